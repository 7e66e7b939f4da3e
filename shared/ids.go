package shared

import (
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// MaxIDBytes is the longest id a message may carry (its id, conversation,
// thread, user and guild ids; the HTTP API's session). Ids become store
// keys and log fields, so the edge that receives one bounds it: a plugin
// answers its platform with the limit, and the host refuses a message
// whose ids break it.
const MaxIDBytes = 256

// IDError says why a user-controlled id is unusable. It never holds the id
// itself, which may be huge or unprintable.
type IDError struct {
	// Field names the id, as its sender knows it ("session", "ConversationID").
	Field string
	// Bytes is the id's length.
	Bytes int
	// Reason says what is wrong, for humans.
	Reason string
}

// Error names the field and the rule it breaks.
func (e *IDError) Error() string {
	return fmt.Sprintf("%s %s", e.Field, e.Reason)
}

// CheckID checks one user-controlled id: at most MaxIDBytes bytes, valid
// UTF-8, no control characters. The empty id is allowed; whether an id is
// required is the caller's business. The error is an *IDError.
func CheckID(field, id string) error {
	if len(id) > MaxIDBytes {
		return &IDError{Field: field, Bytes: len(id),
			Reason: fmt.Sprintf("is %d bytes long; ids are at most %d bytes", len(id), MaxIDBytes)}
	}
	for i, r := range id {
		switch {
		case r == utf8.RuneError && !validRuneAt(id, i):
			return &IDError{Field: field, Bytes: len(id), Reason: fmt.Sprintf("is not valid UTF-8 (byte %d)", i)}
		case unicode.IsControl(r):
			return &IDError{Field: field, Bytes: len(id), Reason: fmt.Sprintf("holds the control character %U at byte %d", r, i)}
		}
	}
	return nil
}

// validRuneAt reports whether the U+FFFD at s[i] was written as such
// rather than produced by an invalid byte.
func validRuneAt(s string, i int) bool {
	_, size := utf8.DecodeRuneInString(s[i:])
	return size == 3
}

// CheckIDs checks every id of m with CheckID. The error is an *IDError
// naming the first bad field.
func (m *Message) CheckIDs() error {
	for _, f := range []struct{ name, id string }{
		{"ID", m.ID},
		{"ConversationID", m.ConversationID},
		{"ThreadID", m.ThreadID},
		{"UserID", m.UserID},
		{"GuildID", m.GuildID},
	} {
		if err := CheckID(f.name, f.id); err != nil {
			return err
		}
	}
	return nil
}

// MaxLogValue is the most of a user-supplied string a log field shows.
const MaxLogValue = 128

// LogValue returns s fit for a log field built from user input: quoted
// where it holds anything unprintable, and cut to MaxLogValue bytes (at a
// character boundary) with the length of what was cut, so one user cannot
// write a 40 KB log line or forge one.
func LogValue(s string) string {
	if len(s) <= MaxLogValue && printable(s) {
		return s
	}
	cut := s
	if len(cut) > MaxLogValue {
		cut = cut[:MaxLogValue]
		// Back up to a character boundary (at most UTFMax-1 bytes).
		for i := 1; i < utf8.UTFMax && len(cut) > 0 && !utf8.RuneStart(s[len(cut)]); i++ {
			cut = cut[:len(cut)-1]
		}
	}
	out := cut
	if !printable(cut) {
		out = strconv.Quote(cut)
		out = out[1 : len(out)-1]
	}
	if len(cut) < len(s) {
		out += fmt.Sprintf("…(%d bytes)", len(s))
	}
	return out
}

// printable reports whether s is valid UTF-8 with nothing that would break
// a log line (control characters, invalid bytes).
func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}
