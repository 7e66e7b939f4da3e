package kit

import (
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// checkChunks asserts what every split must guarantee, and returns the
// failure (if any) so the fuzz target can report it too.
func checkChunks(in string, limit int, unit Unit) error {
	pieces := split(in, limit, unit)
	for i, p := range pieces {
		c := p.String()
		if n := Length(c, unit); n > limit {
			return fmt.Errorf("chunk %d is %d units, over the limit %d", i, n, limit)
		}
		if !utf8.ValidString(c) {
			return fmt.Errorf("chunk %d is not valid UTF-8 (split inside a character)", i)
		}
		if strings.TrimSpace(p.body) == "" {
			return fmt.Errorf("chunk %d is blank", i)
		}
		if _, open := openFence(c); open && i < len(pieces)-1 {
			return fmt.Errorf("chunk %d leaves a code fence open:\n%s", i, c)
		}
		if i > 0 && (p.reopen != "") != (pieces[i-1].close != "") {
			return fmt.Errorf("chunk %d reopens a fence that chunk %d did not close (or the reverse)", i, i-1)
		}
	}
	// Joined without the fences Chunk added, the chunks are the input:
	// each body follows the previous one with nothing but whitespace (the
	// dropped break) between them.
	rest := strings.ToValidUTF8(in, "\uFFFD")
	for i, p := range pieces {
		skipped := 0
		for !strings.HasPrefix(rest[skipped:], p.body) {
			r, size := utf8.DecodeRuneInString(rest[skipped:])
			if size == 0 || !unicode.IsSpace(r) {
				return fmt.Errorf("chunk %d (%q) does not continue the text at %q", i, trunc(p.body), trunc(rest))
			}
			skipped += size
		}
		rest = rest[skipped+len(p.body):]
	}
	if strings.TrimSpace(rest) != "" {
		return fmt.Errorf("text lost after the last chunk: %q", trunc(rest))
	}
	return nil
}

func TestChunk(t *testing.T) {
	long := func(s string, n int) string { return strings.Repeat(s, n) }
	tests := []struct {
		name  string
		in    string
		limit int
		unit  Unit
		want  []string
	}{
		{"empty", "", 2000, CodePoints, nil},
		{"blank", " \n\n ", 2000, CodePoints, nil},
		{"exactly 2000", long("a", 2000), 2000, CodePoints, []string{long("a", 2000)}},
		{"2001 splits hard", long("a", 2001), 2000, CodePoints, []string{long("a", 2000), "a"}},
		{"2000 two-byte runes fit", long("é", 2000), 2000, CodePoints, []string{long("é", 2000)}},
		{"2001 two-byte runes", long("é", 2001), 2000, CodePoints, []string{long("é", 2000), "é"}},
		{"2000 emoji are 2000 code points", long("😀", 2000), 2000, CodePoints, []string{long("😀", 2000)}},
		{"2048 emoji are 4096 UTF-16 units", long("😀", 2048), 4096, UTF16, []string{long("😀", 2048)}},
		{"2049 emoji never split a surrogate pair", long("😀", 2049), 4096, UTF16, []string{long("😀", 2048), "😀"}},
		{"odd UTF-16 limit leaves the pair whole", "a" + long("😀", 10), 16, UTF16, []string{"a" + long("😀", 7), long("😀", 3)}},
		{"bytes never split a UTF-8 sequence", long("字", 10), 16, Bytes, []string{long("字", 5), long("字", 5)}},
		{"CJK counts one each", long("字", 2001), 2000, CodePoints, []string{long("字", 2000), "字"}},
		{"long word", long("x", 4500), 2000, CodePoints, []string{long("x", 2000), long("x", 2000), long("x", 500)}},
		{"word boundary", "hello world foo bar", 16, CodePoints, []string{"hello world foo", "bar"}},
		{"space right after the limit", "hello world foo!! bar", 17, CodePoints, []string{"hello world foo!!", "bar"}},
		{"line before word", "aaaa bbbb\ncccc dddd", 16, CodePoints, []string{"aaaa bbbb", "cccc dddd"}},
		{"paragraph before line", "aaaaaa\nbbbbbb\n\ncccc", 16, CodePoints, []string{"aaaaaa\nbbbbbb", "cccc"}},
		{"early paragraph loses to late line", "aa\n\nbbbbbbbbbb\ncccc", 16, CodePoints, []string{"aa\n\nbbbbbbbbbb", "cccc"}},
		{"combining mark stays with its letter", long("a", 15) + "e\u0301", 16, CodePoints, []string{long("a", 15), "e\u0301"}},
		{"invalid UTF-8 becomes U+FFFD", "a\xffb", 16, CodePoints, []string{"a\uFFFDb"}},
		{"inline fence does not open a block", "```x``` " + long("y", 16), 16, CodePoints, []string{"```x```", long("y", 16)}},
		{
			"fence closed and reopened",
			"```go\nline1\nline2\nline3\n```",
			22, CodePoints,
			[]string{"```go\nline1\nline2\n```", "```go\nline3\n```"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Chunk(tt.in, tt.limit, tt.unit)
			if err := checkChunks(tt.in, tt.limit, tt.unit); err != nil {
				t.Error(err)
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("Chunk(%q, %d)\n got %q\nwant %q", trunc(tt.in), tt.limit, truncAll(got), truncAll(tt.want))
			}
		})
	}
}

func TestChunkLimitTooSmallPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Chunk with a limit of 3 did not panic")
		}
	}()
	Chunk("hello", 3, CodePoints)
}

// TestChunkLongCodeBlock splits a long fenced block: every chunk must
// render as code on its own, and the code lines must survive in order.
func TestChunkLongCodeBlock(t *testing.T) {
	var b strings.Builder
	b.WriteString("Here is the program:\n\n```go\n")
	var lines []string
	for i := range 300 {
		line := fmt.Sprintf("\tfmt.Println(\"line %03d of the program\")", i)
		lines = append(lines, line)
		b.WriteString(line + "\n")
	}
	b.WriteString("```\n\nThat's all.")
	for _, unit := range []Unit{CodePoints, UTF16, Bytes} {
		chunks := Chunk(b.String(), 2000, unit)
		if err := checkChunks(b.String(), 2000, unit); err != nil {
			t.Fatal(err)
		}
		if len(chunks) < 7 {
			t.Fatalf("got %d chunks, want at least 7 for %d units", len(chunks), Length(b.String(), unit))
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
}

// TestChunkProse checks boundaries on realistic prose.
func TestChunkProse(t *testing.T) {
	para := strings.TrimSpace(strings.Repeat("The quick brown fox jumps over the lazy dog. ", 20))
	text := strings.Join([]string{para, para, para, para, para}, "\n\n")
	chunks := Chunk(text, 2000, CodePoints)
	for i, c := range chunks {
		if !strings.HasPrefix(c, "The quick") || !strings.HasSuffix(c, "dog.") {
			t.Errorf("chunk %d is not cut at a paragraph: %q", i, trunc(c))
		}
	}
	if got := strings.Join(chunks, "\n\n"); got != text {
		t.Errorf("joined chunks differ from the text")
	}
}

// FuzzChunk checks Chunk's guarantees on any input: every chunk within the
// limit and valid UTF-8, fences balanced, and the chunks joined (without
// the fences Chunk adds) equal to the text except for whitespace at breaks.
// Seeds live in testdata/fuzz/FuzzChunk.
func FuzzChunk(f *testing.F) {
	f.Add("```go\nfmt.Println(1)\n```\n\nsome prose after the block", uint16(20), uint8(0))
	f.Add(strings.Repeat("😀", 40)+"é\u0301", uint16(17), uint8(1))
	f.Fuzz(func(t *testing.T, in string, limit uint16, unit uint8) {
		lim := MinChunkLimit + int(limit)%3000
		u := Unit(unit % 3)
		if err := checkChunks(in, lim, u); err != nil {
			t.Fatalf("Chunk(%q, %d, %d): %v", in, lim, u, err)
		}
	})
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
