package adapter

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkChunks asserts what every split must guarantee.
func checkChunks(t *testing.T, chunks []string, limit int) {
	t.Helper()
	for i, c := range chunks {
		if n := textLength(c); n > limit {
			t.Errorf("chunk %d is %d units, over the limit %d", i, n, limit)
		}
		if !utf8.ValidString(c) {
			t.Errorf("chunk %d is not valid UTF-8 (split inside a character)", i)
		}
		if strings.TrimSpace(c) == "" {
			t.Errorf("chunk %d is blank", i)
		}
		if _, open := openFence(c); open {
			t.Errorf("chunk %d leaves a code fence open:\n%s", i, c)
		}
	}
}

func TestSplitMessage(t *testing.T) {
	long := func(s string, n int) string { return strings.Repeat(s, n) }
	tests := []struct {
		name  string
		in    string
		limit int
		want  []string
	}{
		{"empty", "", 2000, nil},
		{"blank", " \n\n ", 2000, nil},
		{"exactly 2000", long("a", 2000), 2000, []string{long("a", 2000)}},
		{"2001 splits hard", long("a", 2001), 2000, []string{long("a", 2000), "a"}},
		{"2000 two-byte runes fit", long("é", 2000), 2000, []string{long("é", 2000)}},
		{"2001 two-byte runes", long("é", 2001), 2000, []string{long("é", 2000), "é"}},
		{"1000 emoji are 2000 units", long("😀", 1000), 2000, []string{long("😀", 1000)}},
		{"1001 emoji", long("😀", 1001), 2000, []string{long("😀", 1000), "😀"}},
		{"CJK counts one each", long("字", 2001), 2000, []string{long("字", 2000), "字"}},
		{"long word", long("x", 4500), 2000, []string{long("x", 2000), long("x", 2000), long("x", 500)}},
		{"word boundary", "hello world foo", 11, []string{"hello world", "foo"}},
		{"space right after the limit", "hello world foo", 5, []string{"hello", "world", "foo"}},
		{"line before word", "aaaa bbbb\ncccc dddd", 15, []string{"aaaa bbbb", "cccc dddd"}},
		{"paragraph before line", "aaaaaa\nbbbbbb\n\ncccc", 16, []string{"aaaaaa\nbbbbbb", "cccc"}},
		{"early paragraph loses to late line", "aa\n\nbbbbbbbbbb\ncccc", 16, []string{"aa\n\nbbbbbbbbbb", "cccc"}},
		{"combining mark stays with its letter", "ae\u0301", 2, []string{"a", "e\u0301"}},
		{"inline fence does not open a block", "```x``` " + long("y", 10), 12, []string{"```x```", long("y", 10)}},
		{
			"fence closed and reopened",
			"```go\nline1\nline2\nline3\n```",
			22,
			[]string{"```go\nline1\nline2\n```", "```go\nline3\n```"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := splitMessage(tt.in, tt.limit)
			checkChunks(t, got, tt.limit)
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("splitMessage(%q, %d)\n got %q\nwant %q", trunc(tt.in), tt.limit, truncAll(got), truncAll(tt.want))
			}
		})
	}
}

// TestSplitMessageLongCodeBlock splits a long fenced block: every chunk must
// render as code on its own, and the code lines must survive in order.
func TestSplitMessageLongCodeBlock(t *testing.T) {
	var b strings.Builder
	b.WriteString("Here is the program:\n\n```go\n")
	var lines []string
	for i := range 300 {
		line := fmt.Sprintf("\tfmt.Println(\"line %03d of the program\")", i)
		lines = append(lines, line)
		b.WriteString(line + "\n")
	}
	b.WriteString("```\n\nThat's all.")
	chunks := splitMessage(b.String(), maxMessageLength)
	checkChunks(t, chunks, maxMessageLength)
	if len(chunks) < 7 {
		t.Fatalf("got %d chunks, want at least 7 for %d units", len(chunks), textLength(b.String()))
	}
	var got []string
	for i, c := range chunks {
		if i > 0 && i < len(chunks)-1 && !strings.HasPrefix(c, "```go\n") {
			t.Errorf("chunk %d does not reopen the go fence: %q", i, trunc(c))
		}
		for line := range strings.SplitSeq(c, "\n") {
			if strings.HasPrefix(line, "\tfmt.") {
				got = append(got, line)
			}
		}
	}
	if strings.Join(got, "\n") != strings.Join(lines, "\n") {
		t.Errorf("code lines lost or reordered: got %d lines, want %d", len(got), len(lines))
	}
	if last := chunks[len(chunks)-1]; !strings.HasSuffix(last, "That's all.") {
		t.Errorf("last chunk = %q, want the closing sentence", trunc(last))
	}
}

// TestSplitMessageProse checks boundaries on realistic prose.
func TestSplitMessageProse(t *testing.T) {
	para := strings.TrimSpace(strings.Repeat("The quick brown fox jumps over the lazy dog. ", 20))
	text := strings.Join([]string{para, para, para, para, para}, "\n\n")
	chunks := splitMessage(text, maxMessageLength)
	checkChunks(t, chunks, maxMessageLength)
	for i, c := range chunks {
		if !strings.HasPrefix(c, "The quick") || !strings.HasSuffix(c, "dog.") {
			t.Errorf("chunk %d is not cut at a paragraph: %q", i, trunc(c))
		}
	}
	if got := strings.Join(chunks, "\n\n"); got != text {
		t.Errorf("joined chunks differ from the text")
	}
}

func trunc(s string) string {
	if len(s) > 60 {
		return fmt.Sprintf("%s…(%d bytes)", s[:40], len(s))
	}
	return s
}

func truncAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = trunc(s)
	}
	return out
}
