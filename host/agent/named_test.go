package agent

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/plughost/gateway/host/provider"
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

// downSource is a ToolSource whose only server is down.
type downSource struct{}

func (downSource) Toolbox([]string) (provider.Toolbox, []string) {
	return emptyBox{}, []string{"files"}
}

type emptyBox struct{}

func (emptyBox) Functions() []provider.Function { return nil }
func (emptyBox) Call(context.Context, string, json.RawMessage) (string, bool, error) {
	return "error: not a tool you may use", true, errors.New("not allowed")
}

// A server that is down: the agent still answers, and the model is told
// its tools are unavailable.
func TestToolServerDownIsToldToTheModel(t *testing.T) {
	srv := providertest.New(t)
	srv.APIKey = testKey
	cfg := openaiConfig(srv, 8, 8)
	cfg.Tools = []string{"files.*"}
	s := newTestService(t, cfg, Options{Tools: downSource{}})
	if _, err := s.Reply(context.Background(), "web:a", "hi"); err != nil {
		t.Fatalf("a down tool server failed the agent: %v", err)
	}
	msgs := srv.LastRequest().Messages
	if len(msgs) != 3 || msgs[1].Role != "system" || !strings.Contains(msgs[1].Content, "files") || msgs[2].Content != "hi" {
		t.Fatalf("messages = %+v; want the prompt, a note naming the down server, then the user's message", msgs)
	}
}

// echoSource offers one tool, "echo".
type echoSource struct{}

func (echoSource) Toolbox([]string) (provider.Toolbox, []string) { return echoBox{}, nil }

type echoBox struct{}

func (echoBox) Functions() []provider.Function {
	return []provider.Function{{Name: "t__echo", Parameters: json.RawMessage(`{"type":"object"}`)}}
}
func (echoBox) Call(_ context.Context, _ string, args json.RawMessage) (string, bool, error) {
	return "echo " + string(args), false, nil
}

// Tool turns are history: the next turn sends the assistant's calls and
// their results, the same from the agent's cached copy as from the store.
func TestToolTurnsAreHistory(t *testing.T) {
	srv := providertest.New(t)
	srv.APIKey = testKey
	srv.Calls = func(r *providertest.Request) []providertest.ToolCall {
		if last := r.Messages[len(r.Messages)-1]; last.Role == "user" && last.Content == "use it" {
			return []providertest.ToolCall{providertest.Call("c1", "t__echo", `{"a":1}`)}
		}
		return nil
	}
	cfg := openaiConfig(srv, 8, 8)
	cfg.Tools = []string{"t.*"}
	s := newTestService(t, cfg, Options{Tools: echoSource{}})
	ctx := context.Background()
	if _, err := s.Reply(ctx, "web:a", "use it"); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		if _, err := s.Reply(ctx, "web:a", "next"); err != nil {
			t.Fatal(err)
		}
		m := srv.LastRequest().Messages
		// system, user, assistant(calls), tool, assistant, ..., user "next"
		if m[2].Role != "assistant" || len(m[2].ToolCalls) != 1 || m[2].ToolCalls[0].ID != "c1" ||
			m[3].Role != "tool" || m[3].ToolCallID != "c1" || m[3].Content != `echo {"a":1}` || m[4].Role != "assistant" {
			t.Fatalf("%s: history sent = %+v", when, m)
		}
	}
	check("cached copy")
	s.cache.evictIf(ReasonReload, func(*Agent) bool { return true })
	check("read from the store")
}
