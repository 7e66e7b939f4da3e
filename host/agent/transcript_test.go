package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/plughost/gateway/host/store"
)

// The transcript a platform shows again is the current epoch's user
// messages and replies, without undelivered turns, the newest that fit.
func TestTranscriptOfTheCurrentEpoch(t *testing.T) {
	s := newTestService(t, echoConfig(), Options{})
	ctx := context.Background()
	if _, err := s.Reply(ctx, "web:ann", "before /new"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reset(ctx, "web:ann"); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"one", "two", "lost", "three"} {
		ans, err := s.Answer(ctx, "web:ann", text)
		if err != nil {
			t.Fatal(err)
		}
		if text == "lost" {
			if err := s.MarkUndelivered(ctx, "web:ann", ans.Turn); err != nil {
				t.Fatal(err)
			}
		}
	}
	show := func(msgs []store.Message) string {
		var out []string
		for _, m := range msgs {
			out = append(out, m.Role+":"+m.Content)
		}
		return strings.Join(out, "|")
	}
	msgs, cut, err := s.Transcript("web:ann", 0)
	if want := "user:one|assistant:echo: one|user:two|assistant:echo: two|user:three|assistant:echo: three"; err != nil || cut || show(msgs) != want {
		t.Errorf("transcript = %q (cut %v), %v; want %q", show(msgs), cut, err, want)
	}
	msgs, cut, err = s.Transcript("web:ann", len("three")+len("echo: three")+2*messageOverhead+1)
	if want := "user:three|assistant:echo: three"; err != nil || !cut || show(msgs) != want {
		t.Errorf("cut transcript = %q (cut %v), %v; want %q", show(msgs), cut, err, want)
	}
	if msgs, _, err := s.Transcript("web:nobody", 0); err != nil || len(msgs) != 0 {
		t.Errorf("unknown session: %v, %v", msgs, err)
	}
}
