package adapter

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSplitMessage(t *testing.T) {
	long := strings.Repeat("word ", 2000)                                        // 10,000 characters
	fenced := "intro\n```go\n" + strings.Repeat("x := 1\n", 1200) + "```\nafter" // a fence across parts
	tests := map[string]struct {
		text  string
		parts int
	}{
		"short":          {"hello", 1},
		"empty":          {"  ", 1},
		"exactly limit":  {strings.Repeat("a", 4000), 1},
		"one over":       {strings.Repeat("a", 4001), 2},
		"words":          {long, 3},
		"multibyte":      {strings.Repeat("é", 9000), 3},
		"fence straddle": {fenced, 3},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			parts := splitMessage(tc.text, maxMessageLength)
			if len(parts) != tc.parts {
				t.Fatalf("%d parts, want %d", len(parts), tc.parts)
			}
			for i, p := range parts {
				if n := utf8.RuneCountInString(p); n > maxMessageLength || n == 0 {
					t.Errorf("part %d has %d characters", i, n)
				}
				if !utf8.ValidString(p) {
					t.Errorf("part %d cut a character in half", i)
				}
				if strings.Count(p, "```")%2 != 0 {
					t.Errorf("part %d leaves a code fence open", i)
				}
			}
			if strings.TrimSpace(tc.text) == "" {
				return
			}
			// Nothing is lost: the parts, minus the fences added to
			// balance them and the whitespace at the cuts, are the text.
			joined := strings.Join(parts, "")
			strip := func(s string) string {
				return strings.NewReplacer("```go", "", "```", "", " ", "", "\n", "").Replace(s)
			}
			if strip(joined) != strip(tc.text) {
				t.Fatalf("the parts do not make up the text")
			}
		})
	}
}
