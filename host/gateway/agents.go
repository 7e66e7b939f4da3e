package gateway

import (
	"context"
	"fmt"

	"github.com/plughost/gateway/host/agent"
	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/router"
	"github.com/plughost/gateway/shared"
)

// agentsView adapts the agent service to the router's view of it.
type agentsView struct{ *agent.Service }

var (
	_ router.Agents          = agentsView{}
	_ router.StreamingAgents = agentsView{}
	_ router.FailureDetails  = (*agent.UserError)(nil)
)

// Status implements router.Agents.
func (a agentsView) Status(key string) (router.SessionStatus, error) {
	info, err := a.Session(key)
	if err != nil {
		return router.SessionStatus{}, err
	}
	return router.SessionStatus{Agent: info.Agent, Model: info.Model, Messages: info.Messages}, nil
}

// Reply implements router.Agents.
func (a agentsView) Reply(ctx context.Context, key, text string) (router.Answer, error) {
	ans, err := a.Answer(ctx, key, text)
	return router.Answer{Text: ans.Text, Turn: ans.Turn, Usage: usageOf(ans)}, err
}

// ReplyWith implements router.Agents.
func (a agentsView) ReplyWith(ctx context.Context, key, text string, opts router.TurnOptions) (router.Answer, error) {
	history := make([]provider.Message, len(opts.History))
	for i, m := range opts.History {
		history[i] = provider.Message{Role: provider.Role(m.Role), Content: m.Text}
	}
	ans, err := a.AnswerWith(ctx, key, text, agent.TurnOptions{Model: opts.Model, Stateless: opts.Stateless,
		History: history, OnDelta: opts.OnDelta})
	if err != nil || opts.Stateless {
		return router.Answer{Text: ans.Text, Usage: usageOf(ans)}, err // nothing recorded: no turn to mark
	}
	return router.Answer{Text: ans.Text, Turn: ans.Turn, Usage: usageOf(ans)}, nil
}

// usageOf is the usage an answer's reply carries: nil when the provider
// reported none.
func usageOf(ans agent.Answer) *shared.Usage {
	if ans.Usage == (provider.Usage{}) {
		return nil
	}
	return &shared.Usage{PromptTokens: ans.Usage.PromptTokens, CompletionTokens: ans.Usage.CompletionTokens}
}

// ReplyStream implements router.StreamingAgents.
func (a agentsView) ReplyStream(ctx context.Context, key, text string, onDelta func(string)) (router.Answer, error) {
	ans, err := a.AnswerStream(ctx, key, text, onDelta)
	return router.Answer{Text: ans.Text, Turn: ans.Turn, Usage: usageOf(ans)}, err
}

// MarkUndelivered implements router.Agents.
func (a agentsView) MarkUndelivered(ctx context.Context, key string, turn any) error {
	id, ok := turn.(agent.TurnID)
	if !ok {
		return fmt.Errorf("mark undelivered: turn %T is not an agent.TurnID", turn)
	}
	return a.Service.MarkUndelivered(ctx, key, id)
}
