package agent

import (
	"context"
	"fmt"
	"testing"

	"github.com/plughost/gateway/host/provider/providertest"
)

// Two hosts answering one session through a shared store: with
// SharedStore, each turn sees the turns the other host committed; a host
// that trusted its cached copy would not.
func TestSharedStoreTurnSeesOtherHostsTurns(t *testing.T) {
	for _, shared := range []bool{true, false} {
		t.Run(fmt.Sprint("shared=", shared), func(t *testing.T) {
			srv := providertest.New(t)
			srv.APIKey = testKey
			srv.Reply = func(r *providertest.Request) string {
				n := 0
				for _, m := range r.Messages {
					if m.Role == "user" {
						n++
					}
				}
				return fmt.Sprint("turns=", n)
			}
			st := openStore(t, t.TempDir(), nil)
			opts := Options{SharedStore: shared, SweepInterval: -1}
			a, err := New(openaiConfig(srv, 8, 4), st, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { closeService(t, a) })
			b, err := New(openaiConfig(srv, 8, 4), st, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { closeService(t, b) })
			ctx := context.Background()
			for _, step := range []struct {
				s    *Service
				text string
			}{{a, "one"}, {b, "two"}} {
				if _, err := step.s.Reply(ctx, "k", step.text); err != nil {
					t.Fatal(err)
				}
			}
			got, err := a.Reply(ctx, "k", "three")
			if err != nil {
				t.Fatal(err)
			}
			want := "turns=3"
			if !shared {
				want = "turns=2" // the cached copy missed b's turn: why SharedStore exists
			}
			if got != want {
				t.Fatalf("third turn on host a = %q, want %q", got, want)
			}
		})
	}
}
