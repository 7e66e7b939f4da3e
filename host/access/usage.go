package access

import (
	"context"
	"sort"
	"time"

	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/router"
	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/shared"
)

// loadToday counts the tokens of the current UTC day from the store, so
// that tokens_per_day survives a restart.
func (g *Gate) loadToday() error {
	now := g.opts.Now()
	midnight := now.UTC().Truncate(24 * time.Hour)
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.opts.Store.Usage(midnight, func(r store.UsageRecord) error {
		s := g.state(userKey{r.Platform, r.Agent, r.UserID})
		s.tokensToday(now)
		s.tokens += r.PromptTokens + r.CompletionTokens
		return nil
	})
}

// RecordTurn accounts a committed turn's token usage to the user the
// router's Origin in ctx names (agent.Options.OnUsage). The count applies
// to the user's limits at once; the record is written off the reply path.
func (g *Gate) RecordTurn(ctx context.Context, _ string, u provider.Usage) {
	o, ok := router.OriginOf(ctx)
	if !ok || o.UserID == "" {
		return
	}
	agent := g.policy(o.Platform).Agent
	now := g.opts.Now()
	g.mu.Lock()
	s := g.state(userKey{o.Platform, agent, o.UserID})
	s.tokensToday(now)
	s.tokens += u.Total()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.work.Add(1)
	g.mu.Unlock()
	g.metrics.tokens.WithLabelValues(o.Platform, agent, "prompt").Add(float64(u.PromptTokens))
	g.metrics.tokens.WithLabelValues(o.Platform, agent, "completion").Add(float64(u.CompletionTokens))
	g.metrics.turns.WithLabelValues(o.Platform, agent).Inc()
	go func() {
		defer g.work.Done()
		wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := g.opts.Store.RecordUsage(wctx, store.UsageRecord{Time: now, Platform: o.Platform, Agent: agent,
			UserID: o.UserID, PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens})
		if err != nil {
			g.log.Warn("could not record token usage", "platform", o.Platform, "user", shared.LogValue(o.UserID), "error", err)
		}
	}()
}

// Tokens are token totals.
type Tokens struct {
	Turns            int64 `json:"turns"`
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

func (t *Tokens) add(r store.UsageRecord) {
	t.Turns++
	t.PromptTokens += r.PromptTokens
	t.CompletionTokens += r.CompletionTokens
	t.TotalTokens += r.PromptTokens + r.CompletionTokens
}

// AgentUsage is the usage of one agent on one platform.
type AgentUsage struct {
	Platform string `json:"platform"`
	Agent    string `json:"agent"`
	Tokens
}

// UserUsage is the usage of one user.
type UserUsage struct {
	Platform string `json:"platform"`
	Agent    string `json:"agent"`
	UserID   string `json:"user_id"`
	Tokens
}

// Usage is what GET /v1/usage answers.
type Usage struct {
	Since   time.Time    `json:"since"`
	Until   time.Time    `json:"until"`
	Total   Tokens       `json:"total"`
	ByAgent []AgentUsage `json:"by_agent"`
	// Users are the top users by total tokens.
	Users []UserUsage `json:"users"`
	// UsersOmitted counts the users past the top N.
	UsersOmitted int `json:"users_omitted"`
}

// Report totals the usage recorded from since on: per platform and agent,
// and the top users (top ≤ 0: all of them).
func (g *Gate) Report(since time.Time, top int) (Usage, error) {
	// Records being written are part of the report.
	_ = g.opts.Store.Flush(context.Background())
	out := Usage{Since: since.UTC(), Until: g.opts.Now().UTC(), ByAgent: []AgentUsage{}, Users: []UserUsage{}}
	agents := map[[2]string]*AgentUsage{}
	users := map[userKey]*UserUsage{}
	err := g.opts.Store.Usage(since, func(r store.UsageRecord) error {
		out.Total.add(r)
		ak := [2]string{r.Platform, r.Agent}
		if agents[ak] == nil {
			agents[ak] = &AgentUsage{Platform: r.Platform, Agent: r.Agent}
		}
		agents[ak].add(r)
		uk := userKey{r.Platform, r.Agent, r.UserID}
		if users[uk] == nil {
			users[uk] = &UserUsage{Platform: r.Platform, Agent: r.Agent, UserID: r.UserID}
		}
		users[uk].add(r)
		return nil
	})
	if err != nil {
		return Usage{}, err
	}
	for _, a := range agents {
		out.ByAgent = append(out.ByAgent, *a)
	}
	sort.Slice(out.ByAgent, func(i, j int) bool {
		a, b := out.ByAgent[i], out.ByAgent[j]
		return a.Platform < b.Platform || a.Platform == b.Platform && a.Agent < b.Agent
	})
	for _, u := range users {
		out.Users = append(out.Users, *u)
	}
	sort.Slice(out.Users, func(i, j int) bool {
		a, b := out.Users[i], out.Users[j]
		if a.TotalTokens != b.TotalTokens {
			return a.TotalTokens > b.TotalTokens
		}
		return a.Platform+"\x00"+a.UserID < b.Platform+"\x00"+b.UserID
	})
	if top > 0 && len(out.Users) > top {
		out.UsersOmitted = len(out.Users) - top
		out.Users = out.Users[:top]
	}
	return out, nil
}
