// Package access decides who may talk to the agent, for every platform
// alike: the direct-message policy (pairing, open or allowlist), per-user
// limits (messages a minute, tokens a day) and the token usage they are
// counted from. Plugins report who wrote (shared.Message UserID, Direct);
// the host asks the Gate before a message reaches the router.
//
// Pairing state (codes, approved users) and usage live in the session store,
// so approvals and today's token counts survive a restart.
package access

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/shared"
)

// DMPolicy says who may talk to the agent in direct messages.
type DMPolicy string

// The DM policies of a platform's access block.
const (
	// DMPairing: an unknown user gets a code; once the operator approves
	// it, the user is answered (the default on chat platforms).
	DMPairing DMPolicy = "pairing"
	// DMOpen: everyone is answered (the default of the HTTP platform).
	DMOpen DMPolicy = "open"
	// DMAllowlist: only allowed_users are answered.
	DMAllowlist DMPolicy = "allowlist"
)

// DefaultAgent is the name usage and limits are keyed by while there is
// one agent block.
const DefaultAgent = "default"

// Defaults of Options.
const (
	DefaultCodeTTL      = time.Hour
	DefaultCodeInterval = time.Hour
)

// Policy is one platform's access settings.
type Policy struct {
	DM DMPolicy
	// AllowedUsers are always answered in DMs, and under DMAllowlist the
	// only ones.
	AllowedUsers []string
	// Agent is the agent that answers the platform; "" is DefaultAgent.
	Agent string
	// AnswerEvery: each message waits for an answer (the HTTP platform: a
	// request gets one reply or times out), so every refused message is
	// answered, not only the first of a series.
	AnswerEvery bool
}

// Limits are one agent's per-user limits; zero means no limit.
type Limits struct {
	MessagesPerMinute int
	TokensPerDay      int64
}

// Sender delivers the gate's notices (pairing codes, limit notices).
type Sender interface {
	Send(ctx context.Context, platform string, r shared.Reply) ([]string, error)
}

// Options configure a Gate.
type Options struct {
	Store  store.Backend
	Sender Sender
	Logger hclog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// CodeTTL is how long a pairing code is valid; default 1h.
	CodeTTL time.Duration
	// CodeInterval is the least time between two codes sent to one user;
	// default 1h.
	CodeInterval time.Duration
}

// Gate is the access policy in force. It is safe for concurrent use.
type Gate struct {
	opts    Options
	log     hclog.Logger
	metrics *metrics

	mu        sync.Mutex
	platforms map[string]Policy
	plugin    map[string]map[string]bool // platform → users its plugin's allowed_users lists
	limits    map[string]Limits          // by agent
	users     map[userKey]*userState
	lastSweep time.Time

	pairMu sync.Mutex     // serialises issuing codes
	work   sync.WaitGroup // notices and usage writes in flight
	closed bool
}

// New returns a gate with no platform configured (every DM under pairing)
// and today's token usage loaded from the store.
func New(opts Options) (*Gate, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CodeTTL <= 0 {
		opts.CodeTTL = DefaultCodeTTL
	}
	if opts.CodeInterval <= 0 {
		opts.CodeInterval = DefaultCodeInterval
	}
	g := &Gate{
		opts: opts, log: opts.Logger, metrics: newMetrics(),
		platforms: map[string]Policy{}, plugin: map[string]map[string]bool{},
		limits: map[string]Limits{}, users: map[userKey]*userState{},
	}
	if err := g.loadToday(); err != nil {
		return nil, fmt.Errorf("loading today's token usage: %w", err)
	}
	return g, nil
}

// Configure sets the platforms' policies and the agents' limits, replacing
// the previous ones (a reload).
func (g *Gate) Configure(platforms map[string]Policy, limits map[string]Limits) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.platforms = platforms
	g.limits = limits
}

// SetPluginAllowed records the allowed_users list of a platform's plugin
// config block: those users are allowed by the operator already, so they
// skip pairing as if listed in the access block.
func (g *Gate) SetPluginAllowed(platform string, users []string) {
	set := make(map[string]bool, len(users))
	for _, u := range users {
		set[u] = true
	}
	g.mu.Lock()
	g.plugin[platform] = set
	g.mu.Unlock()
}

func (g *Gate) policy(platform string) Policy {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, ok := g.platforms[platform]
	if !ok || p.DM == "" {
		p.DM = DMPairing
	}
	if p.Agent == "" {
		p.Agent = DefaultAgent
	}
	return p
}

// allowedUser reports whether user is on the platform's allowed_users (the
// access block's or its plugin's).
func (g *Gate) allowedUser(platform string, pol Policy, user string) bool {
	for _, u := range pol.AllowedUsers {
		if u == user {
			return true
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.plugin[platform][user]
}

// Admit decides whether m goes on to the router. When it does not, the gate
// has answered the user as the policy says (a pairing code, a limit
// notice) or stays silent.
func (g *Gate) Admit(platform string, m *shared.Message) bool {
	pol := g.policy(platform)
	if m.Direct && !g.admitDM(platform, pol, m) {
		return false
	}
	return g.withinLimits(platform, pol, m)
}

func (g *Gate) admitDM(platform string, pol Policy, m *shared.Message) bool {
	if m.UserID == "" {
		g.log.Warn("refused a direct message without a user id", "platform", platform)
		g.metrics.refused(platform, "no_user")
		return false
	}
	if g.allowedUser(platform, pol, m.UserID) {
		return true
	}
	switch pol.DM {
	case DMOpen:
		return true
	case DMAllowlist:
		g.log.Debug("direct message from a user not in allowed_users", "platform", platform, "user", shared.LogValue(m.UserID))
		g.metrics.refused(platform, "allowlist")
		if pol.AnswerEvery {
			g.notify(platform, noticeTo(m, "You are not allowed to talk to this agent."))
		}
		return false
	}
	return g.pair(platform, pol, m)
}

// noticeTo is a notice answering m.
func noticeTo(m *shared.Message, text string) shared.Reply {
	return shared.Reply{ConversationID: m.ConversationID, ThreadID: m.ThreadID, ReplyToID: m.ID, Text: text, Kind: shared.KindNotice}
}

// notify sends text to the conversation off the message path; Close waits
// for the notices in flight.
func (g *Gate) notify(platform string, r shared.Reply) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.work.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.work.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := g.opts.Sender.Send(ctx, platform, r); err != nil {
			g.log.Warn("could not deliver an access notice", "platform", platform, "error", err)
		}
	}()
}

// Close waits for notices and usage writes in flight; the gate sends no
// notice afterwards.
func (g *Gate) Close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.work.Wait()
}
