package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/shared"
)

// DefaultAgent is the agent of a platform with no route, and the one the
// Config's top-level fields describe.
const DefaultAgent = "default"

// Named is a named agent's settings (an agent "NAME" block).
type Named struct {
	Name         string
	Model        string // PROVIDER/MODEL; DefaultModel if empty
	SystemPrompt string
	HistoryLimit int
	// Tools are the MCP tool patterns the agent may call ("SERVER.TOOL",
	// "SERVER.*"); none when empty.
	Tools []string
	// MaxToolRounds bounds the rounds of tool calls in one reply;
	// provider.DefaultMaxToolRounds if 0.
	MaxToolRounds int
}

// ToolSource gives an agent the tools its patterns allow now, and the
// allowed servers that are down (the model is told their tools are
// missing). The host's MCP manager is one.
type ToolSource interface {
	Toolbox(patterns []string) (tools provider.Toolbox, unavailable []string)
}

// named returns the settings of the agent called name: the default agent
// (the top-level fields) for DefaultAgent or an unknown name.
func (c Config) named(name string) Named {
	for _, a := range c.Agents {
		if a.Name == name && name != DefaultAgent {
			return a
		}
	}
	return Named{Name: DefaultAgent, Model: c.Model, SystemPrompt: c.SystemPrompt, HistoryLimit: c.HistoryLimit,
		Tools: c.Tools, MaxToolRounds: c.MaxToolRounds}
}

// agentOf returns the agent a session key's platform is routed to (a key
// starts with "PLATFORM:").
func (c Config) agentOf(key string) string {
	platform, _, _ := strings.Cut(key, ":")
	if a, ok := c.Routes[platform]; ok && a != "" {
		return a
	}
	return DefaultAgent
}

// agentFor returns the settings of the agent serving key.
func (s *Service) agentFor(key string) Named {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cfg.named(s.cfg.agentOf(key))
}

// AgentNames lists the configured agents, the default first (for the
// access policy's per-agent limits and for status).
func (s *Service) AgentNames() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []string{DefaultAgent}
	for _, a := range s.cfg.Agents {
		if a.Name != DefaultAgent {
			out = append(out, a.Name)
		}
	}
	return out
}

// AgentOf returns the name of the agent that serves the session key.
func (s *Service) AgentOf(key string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cfg.agentOf(key)
}

func (n Named) model() string {
	if n.Model == "" {
		return DefaultModel
	}
	return n.Model
}

// toolKey is the agent's tool patterns as one comparable string (specs are
// compared with ==).
func (n Named) toolKey() string { return strings.Join(n.Tools, "\x00") }

// addTools offers the agent's tools on the turn's request, and tells the
// model which of its servers are down.
func (s *Service) addTools(t *turn) {
	if t.spec.tools == "" || s.opts.Tools == nil {
		return
	}
	box, down := s.opts.Tools.Toolbox(strings.Split(t.spec.tools, "\x00"))
	t.req.Tools = box
	t.req.MaxToolRounds = t.spec.maxToolRounds
	key := t.key
	t.req.OnToolCall = func(function string) {
		s.log.Debug("tool call", "session", shared.LogValue(key), "agent", t.spec.agent, "function", function)
	}
	if len(down) > 0 {
		note := provider.Message{Role: provider.RoleSystem, Content: fmt.Sprintf(
			"Note: the tools of the MCP server(s) %s are unavailable right now (the server is down); do not try to call them, and tell the user if you need them.",
			strings.Join(down, ", "))}
		// Before the user's message, after the prompt and history.
		n := len(t.req.Messages)
		t.req.Messages = append(t.req.Messages[:n-1:n-1], note, t.req.Messages[n-1])
	}
}

// toStore converts the tool rounds of a reply into transcript messages.
func toStore(msgs []provider.Message, at func() store.Message) ([]store.Message, error) {
	out := make([]store.Message, 0, len(msgs))
	for _, m := range msgs {
		sm := at()
		sm.Role, sm.Content, sm.ToolCallID = string(m.Role), m.Content, m.ToolCallID
		if len(m.ToolCalls) > 0 {
			raw, err := json.Marshal(m.ToolCalls)
			if err != nil {
				return nil, fmt.Errorf("encode tool calls: %w", err)
			}
			sm.ToolCalls = raw
		}
		out = append(out, sm)
	}
	return out, nil
}

// fromStore converts a stored message for the model.
func fromStore(m store.Message) provider.Message {
	pm := provider.Message{Role: provider.Role(m.Role), Content: m.Content, ToolCallID: m.ToolCallID}
	if len(m.ToolCalls) > 0 {
		_ = json.Unmarshal(m.ToolCalls, &pm.ToolCalls) // written by toStore
	}
	return pm
}

// trimOrphans drops the tool results at the start of a history tail whose
// assistant message (with the calls) fell outside the limit: the API
// refuses a tool message that answers no call.
func trimOrphans(tail []provider.Message) []provider.Message {
	for len(tail) > 0 && tail[0].Role == provider.RoleTool {
		tail = tail[1:]
	}
	return tail
}

// completeTools is Complete for a turn whose agent has tools: streaming
// gives way to the tool loop, and the reply is handed over whole.
func (t *turn) completeTools(ctx context.Context, onDelta func(string)) (*provider.Response, error) {
	resp, err := t.agent.client.Complete(ctx, t.req)
	if err == nil && onDelta != nil && resp.Content != "" {
		onDelta(resp.Content)
	}
	return resp, err
}
