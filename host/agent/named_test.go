package agent

import (
	"context"
	"testing"

	"github.com/plughost/gateway/host/provider/providertest"
)

// Two platforms routed to two agents: each session gets its agent's
// prompt, the session info names the agent, and a reload that changes one
// agent evicts (and closes) only that agent's sessions.
func TestNamedAgentsRoutedAndReloadedAlone(t *testing.T) {
	srv := providertest.New(t)
	srv.APIKey = testKey
	cfg := openaiConfig(srv, 8, 8)
	cfg.Agents = []Named{{Name: "support", Model: "fake/m2", SystemPrompt: "You are support.", HistoryLimit: 10}}
	cfg.Routes = map[string]string{"slack": "support", "tg": DefaultAgent}
	s := newTestService(t, cfg, Options{})
	tr := track(s)
	ctx := context.Background()
	for _, key := range []string{"slack:c1", "tg:c1", "web:c1"} {
		if _, err := s.Reply(ctx, key, "hi"); err != nil {
			t.Fatal(err)
		}
	}
	reqs := srv.Requests()
	if reqs[0].System() != "You are support." || reqs[0].Model != "m2" || reqs[1].System() != "You are terse." || reqs[2].System() != "You are terse." {
		t.Fatalf("prompts/models: %q %q / %q / %q", reqs[0].System(), reqs[0].Model, reqs[1].System(), reqs[2].System())
	}
	if info, err := s.Session("slack:c1"); err != nil || info.Agent != "support" || info.Model != "fake/m2" {
		t.Fatalf("slack session: %+v %v", info, err)
	}
	if info, _ := s.Session("web:c1"); info.Agent != DefaultAgent {
		t.Fatalf("an unrouted platform talks to %q, want the default agent", info.Agent)
	}
	if got := s.AgentNames(); len(got) != 2 || got[0] != DefaultAgent || got[1] != "support" {
		t.Fatalf("AgentNames = %v", got)
	}

	next := cfg
	next.Agents = []Named{{Name: "support", Model: "fake/m2", SystemPrompt: "You are support, v2.", HistoryLimit: 10}}
	if err := s.Apply(next); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Evictions != 1 || st.Agents != 2 {
		t.Fatalf("changing one agent evicted %d (left %d); want only its one session", st.Evictions, st.Agents)
	}
	if _, err := s.Reply(ctx, "slack:c1", "again"); err != nil {
		t.Fatal(err)
	}
	if got := srv.LastRequest().System(); got != "You are support, v2." {
		t.Fatalf("after the reload the support agent's prompt is %q", got)
	}

	// /model switches the model within the agent.
	if err := s.SetModel(ctx, "slack:c1", "echo/echo"); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.Session("slack:c1"); info.Agent != "support" || info.Model != "echo/echo" {
		t.Fatalf("after /model: %+v", info)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	tr.closedOnce(t)
}
