package agent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/provider/providertest"
	"github.com/plughost/gateway/shared"
)

// A turn on another model than the session's runs beside the session's
// cached agent (neither used nor evicted), is recorded like any turn, and
// leaves the session on its own model; its one-off agent is closed.
func TestTurnOnAnotherModelKeepsTheSession(t *testing.T) {
	srv := providertest.New(t)
	srv.APIKey = testKey
	s := newTestService(t, openaiConfig(srv, 8, 4), Options{})
	ctx := context.Background()
	if _, err := s.Reply(ctx, "web:bob", "one"); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	ans, err := s.AnswerWith(ctx, "web:bob", "two", TurnOptions{Model: "echo/echo"})
	if err != nil || ans.Text != "echo: two" || ans.Turn.Epoch != 0 || ans.Turn.Asked.IsZero() {
		t.Fatalf("echo turn = %+v, %v", ans, err)
	}
	if after := s.Stats(); after.Evictions != before.Evictions || after.Agents != 1 {
		t.Errorf("cache after a one-off turn: %+v, want the session's agent untouched (before %+v)", after, before)
	}
	if m, _ := s.Model("web:bob"); m != "fake/m1" {
		t.Errorf("session model = %q, want its own", m)
	}
	// The next turn on the session's own model sees the echo turn: the
	// cached copy was dropped and the store read again.
	if _, err := s.Reply(ctx, "web:bob", "three"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range srv.LastRequest().Messages {
		got = append(got, m.Role+":"+m.Content)
	}
	if want := "system:You are terse.|user:one|assistant:reply to: one|user:two|assistant:echo: two|user:three"; strings.Join(got, "|") != want {
		t.Errorf("history = %q, want %q", strings.Join(got, "|"), want)
	}
	if n := checkCopies(t, s); n != 1 {
		t.Errorf("%d trusted copies", n)
	}
	// A streamed one-off turn, on the fake under another model name.
	var deltas strings.Builder
	ans, err = s.AnswerWith(ctx, "web:bob", "four", TurnOptions{Model: "fake/m2", OnDelta: func(d string) { deltas.WriteString(d) }})
	if err != nil || ans.Text != "reply to: four" || deltas.String() != ans.Text || srv.LastRequest().Model != "m2" {
		t.Errorf("streamed one-off = %+v (deltas %q), %v; provider model %q", ans, deltas.String(), err, srv.LastRequest().Model)
	}
}

// /model's rule: not PROVIDER/MODEL, or an unconfigured provider, is a
// UserError coded model_not_found, and nothing reaches a provider.
func TestTurnModelIsChecked(t *testing.T) {
	srv := providertest.New(t)
	srv.APIKey = testKey
	s := newTestService(t, openaiConfig(srv, 8, 4), Options{})
	for _, model := range []string{"nosuch/m", "fake", "/m", "fake/"} {
		for _, stateless := range []bool{false, true} {
			_, err := s.AnswerWith(context.Background(), "web:bob", "hi", TurnOptions{Model: model, Stateless: stateless})
			var ue *UserError
			if !errors.As(err, &ue) || ue.ReplyCode() != shared.CodeModelNotFound {
				t.Errorf("model %q (stateless %v): %v, want a UserError coded %s", model, stateless, err, shared.CodeModelNotFound)
			}
		}
	}
	if srv.Served() != 0 {
		t.Errorf("the provider served %d requests", srv.Served())
	}
	if st, _ := s.Session("web:bob"); st.Messages != 0 {
		t.Errorf("session has %d messages", st.Messages)
	}
}

// A stateless turn sends the agent's system prompt, the given history and
// the text, records nothing and caches no agent.
func TestStatelessTurnRecordsNothing(t *testing.T) {
	srv := providertest.New(t)
	srv.APIKey = testKey
	s := newTestService(t, openaiConfig(srv, 8, 4), Options{})
	history := []provider.Message{{Role: provider.RoleSystem, Content: "Be kind."}, {Role: provider.RoleUser, Content: "a"}, {Role: provider.RoleAssistant, Content: "b"}}
	ans, err := s.AnswerWith(context.Background(), "web::stateless:1", "c", TurnOptions{Stateless: true, History: history})
	if err != nil || ans.Text != "reply to: c" || ans.Turn != (TurnID{}) {
		t.Fatalf("stateless = %+v, %v", ans, err)
	}
	var got []string
	for _, m := range srv.LastRequest().Messages {
		got = append(got, m.Role+":"+m.Content)
	}
	if want := "system:You are terse.|system:Be kind.|user:a|assistant:b|user:c"; strings.Join(got, "|") != want {
		t.Errorf("sent %q, want %q", strings.Join(got, "|"), want)
	}
	keys, err := s.store.Keys()
	if err != nil || len(keys) != 0 {
		t.Errorf("store keys = %v, %v; want none", keys, err)
	}
	if st := s.Stats(); st.Agents != 0 {
		t.Errorf("cache holds %d agents", st.Agents)
	}
	// Closing the service waits for nothing: the one-off agent is closed.
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := srv.WaitOpenConns(0, 5*time.Second); n != 0 {
		t.Errorf("%d provider connections open after Close", n)
	}
}
