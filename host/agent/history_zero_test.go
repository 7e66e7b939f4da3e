package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/plughost/gateway/host/provider/providertest"
)

// history_limit = 0 means no history: each turn sends only the system
// prompt and the new message, and the turns are still recorded. A reload
// to 0 takes effect (it used to fall back to 40).
func TestZeroHistoryLimitSendsNoHistory(t *testing.T) {
	srv := providertest.New(t)
	cfg := openaiConfig(srv, 8, 8)
	s := newTestService(t, cfg, Options{})
	ctx := context.Background()
	for i := range 2 {
		if _, err := s.Reply(ctx, "alice", fmt.Sprint("q", i)); err != nil {
			t.Fatal(err)
		}
	}
	next := openaiConfig(srv, 8, 8)
	next.HistoryLimit = 0
	if err := s.Apply(next); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reply(ctx, "alice", "q2"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range srv.LastRequest().Messages {
		got = append(got, m.Role+":"+m.Content)
	}
	if want := "system:You are terse.|user:q2"; strings.Join(got, "|") != want {
		t.Fatalf("sent %q, want %q", got, want)
	}
	st, err := s.Session("alice")
	if err != nil || st.Messages != 6 {
		t.Fatalf("status = %+v, %v; want the 6 messages of 3 turns recorded", st, err)
	}
}
