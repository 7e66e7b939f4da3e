package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzMsgKey checks the message key encoding: it decodes back to what was
// encoded, one session's messages sort by (epoch, seq), and no session's
// range holds another session's messages, whatever the keys hold.
func FuzzMsgKey(f *testing.F) {
	f.Add("alice", "alice", uint64(0), uint64(0), uint64(0), uint64(1))
	f.Add("a", "ab", uint64(1), uint64(0), uint64(7), uint64(7))
	f.Add("web:a", "web:a:u:b", uint64(0), uint64(0), uint64(^uint64(0)), uint64(0))
	f.Add("\x00\x01", "\x00", uint64(1), uint64(2), uint64(3), uint64(4))
	f.Fuzz(func(t *testing.T, a, b string, ea, eb, sa, sb uint64) {
		if a == "" || b == "" || len(a) > maxKeyLen || len(b) > maxKeyLen {
			return
		}
		ka, kb := msgKey(a, ea, sa), msgKey(b, eb, sb)
		n := int(binary.BigEndian.Uint16(ka))
		if n != len(a) || string(ka[2:2+n]) != a || binary.BigEndian.Uint64(ka[2+n:]) != ea || binary.BigEndian.Uint64(ka[10+n:]) != sa {
			t.Fatalf("msgKey(%q, %d, %d) = %x does not decode back", a, ea, sa, ka)
		}
		if a == b {
			want := cmp.Or(cmp.Compare(ea, eb), cmp.Compare(sa, sb))
			if got := bytes.Compare(ka, kb); got != want {
				t.Fatalf("(%d,%d) vs (%d,%d) sorts %d, want %d", ea, sa, eb, sb, got, want)
			}
			return
		}
		rangeA := msgKey(a, ea, 0)[:2+len(a)+8]
		if bytes.HasPrefix(kb, rangeA) {
			t.Fatalf("session %q's message %x falls in session %q's range %x", b, kb, a, rangeA)
		}
	})
}

// FuzzStoreRecord appends a turn under an arbitrary key and content and
// reads it back: a key the store cannot hold is refused up front with
// ErrInvalidKey (never inside a group commit, where it would fail its
// neighbours), and what is stored reads back as written (invalid UTF-8
// becomes U+FFFD, as JSON has it).
func FuzzStoreRecord(f *testing.F) {
	f.Add("alice", "hello")
	f.Add("", "empty key")
	f.Add("k\x00\xff", "bad \xff bytes")
	s, err := Open(filepath.Join(f.TempDir(), FileName), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close() })
	at := time.Unix(1_700_000_000, 0).UTC()
	f.Fuzz(func(t *testing.T, key, content string) {
		ctx := context.Background()
		before, err := s.Session(key)
		if err != nil {
			t.Fatal(err)
		}
		user := Message{Role: "user", Content: content, Time: at}
		asst := Message{Role: "assistant", Content: "re: " + content, Time: at}
		err = s.AppendTurn(ctx, key, before.Epoch, user, asst)
		if key == "" || len(key) > maxKeyLen {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("AppendTurn with a key of %d bytes = %v, want ErrInvalidKey", len(key), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("AppendTurn with a key of %d bytes: %v", len(key), err)
		}
		sess, msgs, err := s.History(key, 2)
		if err != nil {
			t.Fatal(err)
		}
		if sess.Messages != before.Messages+2 || len(msgs) != 2 {
			t.Fatalf("after one turn: %d messages (was %d), tail %d", sess.Messages, before.Messages, len(msgs))
		}
		want := content
		if !utf8.ValidString(content) {
			want = strings.ToValidUTF8(content, "\uFFFD") // per run; compare loosely below
		}
		got := msgs[0]
		if got.Role != "user" || !got.Time.Equal(at) || !utf8.ValidString(got.Content) ||
			(utf8.ValidString(content) && got.Content != want) || msgs[1].Content != "re: "+got.Content {
			t.Fatalf("read back %+v / %+v, wrote %q", got, msgs[1], content)
		}
	})
}
