package shared

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckID(t *testing.T) {
	for _, tc := range []struct {
		name, id string
		want     string // "" for valid
	}{
		{"empty", "", ""},
		{"plain", "alice", ""},
		{"unicode", "ålice-😀", ""},
		{"a written U+FFFD", "a\uFFFDb", ""},
		{"at the limit", strings.Repeat("x", MaxIDBytes), ""},
		{"over the limit", strings.Repeat("x", MaxIDBytes+1), "is 257 bytes long; ids are at most 256 bytes"},
		{"invalid UTF-8", "ab\xffc", "is not valid UTF-8 (byte 2)"},
		{"NUL", "a\x00", "holds the control character U+0000 at byte 1"},
		{"newline", "a\nb", "holds the control character U+000A at byte 1"},
		{"C1 control", "a\u0085", "holds the control character U+0085 at byte 1"},
	} {
		err := CheckID("session", tc.id)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: CheckID = %v, want nil", tc.name, err)
			}
			continue
		}
		var ie *IDError
		if !errors.As(err, &ie) || ie.Field != "session" || ie.Bytes != len(tc.id) || err.Error() != "session "+tc.want {
			t.Errorf("%s: CheckID = %v, want an *IDError %q", tc.name, err, "session "+tc.want)
		}
	}
}

func TestMessageCheckIDsNamesTheField(t *testing.T) {
	m := &Message{ID: "1", ConversationID: "c", ThreadID: strings.Repeat("t", 300), UserID: "u"}
	var ie *IDError
	if err := m.CheckIDs(); !errors.As(err, &ie) || ie.Field != "ThreadID" {
		t.Fatalf("CheckIDs = %v, want an *IDError for ThreadID", err)
	}
	m.ThreadID = "t"
	if err := m.CheckIDs(); err != nil {
		t.Fatalf("CheckIDs = %v", err)
	}
}

func TestLogValue(t *testing.T) {
	if got := LogValue("alice"); got != "alice" {
		t.Errorf("LogValue(alice) = %q", got)
	}
	long := strings.Repeat("é", 40000) // 80,000 bytes, 2 per character
	got := LogValue(long)
	if !strings.HasSuffix(got, "…(80000 bytes)") || len(got) > MaxLogValue+len("…(80000 bytes)") || !utf8.ValidString(got) {
		t.Errorf("LogValue(80 KB) = %q", got)
	}
	if got := LogValue("a\nlevel=error forged"); strings.ContainsAny(got, "\n") || got != `a\nlevel=error forged` {
		t.Errorf("LogValue with a newline = %q", got)
	}
	if got := LogValue("bad \xff byte"); !utf8.ValidString(got) || got != `bad \xff byte` {
		t.Errorf("LogValue with an invalid byte = %q", got)
	}
}
