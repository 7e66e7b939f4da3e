// Package adapter is the Discord platform: a shared.Platform that connects a
// bot to Discord's gateway, turns messages into host events, and posts
// replies split to Discord's limits. Its main package only calls
// shared.Serve(&adapter.Adapter{}).
package adapter

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// maxMessageLength is Discord's limit on a message's content: 2,000
// characters, counted as Unicode code points.
const maxMessageLength = 2000

// timing holds the waits the adapter uses; tests shorten them.
type timing struct {
	openTimeout  time.Duration // dial + HELLO + READY, and each write
	backoffBase  time.Duration
	backoffMax   time.Duration
	stableAfter  time.Duration // a connection up this long resets the backoff
	stopTimeout  time.Duration // how long Stop waits for Run to end
	typingWindow time.Duration // Typing calls closer than this post once
	// channelRate is the budget of sends and typing indicators per
	// channel: Discord allows about five messages per five seconds.
	channelRate kit.Rate
	// invalidSessionWait is the pause Discord asks for after a
	// non-resumable op 9, before identifying again.
	invalidSessionWait func() time.Duration
	// now is the clock streamed replies measure edit_interval with; nil
	// is time.Now.
	now func() time.Time
	// identifyWindow is identify_budget's window; zero means an hour.
	identifyWindow time.Duration
}

var defaultTiming = timing{
	openTimeout:  10 * time.Second,
	backoffBase:  time.Second,
	backoffMax:   time.Minute,
	stableAfter:  30 * time.Second,
	stopTimeout:  1500 * time.Millisecond,
	typingWindow: 4 * time.Second,
	channelRate:  kit.Rate{Every: time.Second, Burst: 5},
	invalidSessionWait: func() time.Duration {
		return time.Second + rand.N(4*time.Second)
	},
}

// Adapter is the Discord platform plugin. The zero value is ready for
// Describe and Configure.
type Adapter struct {
	// tune overrides defaultTiming when set (tests).
	tune timing

	mu        sync.Mutex
	cfg       settings
	log       hclog.Logger
	rest      *discordgo.Session
	transport *http.Transport
	budget    *identifyBudget
	rate      *kit.Budget // per channel: sends and typing
	bot       *discordgo.User
	runner    kit.Runner

	threads threadSet
	typing  typingLimiter
	// resumeFrom is the session Config.Cursor names, resumed by the next
	// Run (zero: identify).
	resumeFrom cursor
	live       liveReplies // replies being streamed
}

var _ shared.Platform = (*Adapter)(nil)

// Describe returns the plugin's name and config schema.
func (a *Adapter) Describe(context.Context) (shared.Description, error) {
	return shared.Description{
		Name:        "discord",
		Version:     shared.Version,
		Description: "Discord bot: answers DMs and @mentions in servers, with threads, typing and long replies split",
		Schema:      schema,
	}, nil
}

// Configure validates the config block and prepares the REST client. It
// does not touch the network: the token is checked when Run starts.
func (a *Adapter) Configure(_ context.Context, cfg shared.Config) error {
	s, err := parseSettings(cfg)
	if err != nil {
		return err
	}
	rest, transport, err := newREST(s)
	if err != nil {
		return err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.runner.Running() {
		transport.CloseIdleConnections()
		return errors.New("discord plugin: Configure called while running")
	}
	if a.transport != nil {
		a.transport.CloseIdleConnections()
	}
	if a.tune.openTimeout == 0 {
		a.tune = defaultTiming
	}
	a.cfg, a.rest, a.transport, a.log = s, rest, transport, logger.Named("discord")
	a.resumeFrom, _ = parseCursor(cfg.Cursor)
	a.runner.Name = "discord plugin"
	a.budget = newIdentifyBudget(s.identifyBudget)
	if a.tune.identifyWindow > 0 {
		a.budget.window = a.tune.identifyWindow
	}
	if a.rate == nil {
		a.rate = kit.NewBudget(a.tune.channelRate)
	}
	a.log.Debug("configured", "api_url", s.apiURL.String(), "require_mention", s.access.RequireMention,
		"identify_budget", s.identifyBudget)
	return nil
}

// Stop ends Run, closing the gateway connection, and waits (bounded) for it
// to finish.
func (a *Adapter) Stop(ctx context.Context) error {
	a.mu.Lock()
	transport, wait := a.transport, a.tune.stopTimeout
	a.mu.Unlock()
	if wait == 0 {
		wait = defaultTiming.stopTimeout
	}
	err := a.runner.Stop(ctx, wait)
	if transport != nil {
		transport.CloseIdleConnections()
	}
	return err
}

// Send posts a reply in the conversation it answers, split into chunks of
// at most 2,000 characters; the first chunk replies to the user's message
// when reply_to_message is set. It returns the ids of the posted messages.
func (a *Adapter) Send(ctx context.Context, r shared.Reply) ([]string, error) {
	s, rest, rate, err := a.configured()
	if err != nil {
		return nil, err
	}
	channel := r.ThreadID
	if channel == "" {
		channel = r.ConversationID
	}
	if channel == "" {
		return nil, errors.New("discord send: reply has no conversation id")
	}
	chunks := kit.Chunk(r.Text, maxMessageLength, kit.CodePoints)
	ids := make([]string, 0, len(chunks))
	for i, chunk := range chunks {
		if err := rate.Wait(ctx, channel, kit.Final); err != nil {
			return ids, sendFailed(ctx, err, i, len(chunks), channel)
		}
		ms := &discordgo.MessageSend{Content: chunk, AllowedMentions: allowedMentions()}
		if i == 0 && s.replyToMessage && r.ReplyToID != "" {
			failIfGone := false // the user deleted their message: post anyway
			ms.Reference = &discordgo.MessageReference{MessageID: r.ReplyToID, ChannelID: channel, FailIfNotExists: &failIfGone}
		}
		m, err := a.postMessage(ctx, rest, channel, ms)
		if err != nil {
			if isUnauthorized(err) {
				return ids, a.fail(tokenRejected("REST 401 while sending"))
			}
			return ids, sendFailed(ctx, err, i, len(chunks), channel)
		}
		ids = append(ids, m.ID)
	}
	// Posting a message ends the typing indicator on Discord's side.
	a.typing.forget(channel)
	return ids, nil
}

// allowedMentions lets replies ping users (the replied-to user included)
// but never @everyone, @here or roles, whatever the agent writes.
func allowedMentions() *discordgo.MessageAllowedMentions {
	return &discordgo.MessageAllowedMentions{
		Parse:       []discordgo.AllowedMentionType{discordgo.AllowedMentionTypeUsers},
		RepliedUser: true,
	}
}

// Typing shows the typing indicator in a conversation. Discord shows it for
// about ten seconds; the host calls Typing periodically while the agent
// works, and calls closer together than the typing window post only once.
func (a *Adapter) Typing(ctx context.Context, conv shared.Conversation) error {
	s, rest, rate, err := a.configured()
	if err != nil || !s.typing {
		return err
	}
	channel := conv.ThreadID
	if channel == "" {
		channel = conv.ConversationID
	}
	if channel == "" || !a.typing.due(channel, time.Now(), a.tune.typingWindow) {
		return nil
	}
	if rate.Wait(ctx, channel, kit.Interim) != nil {
		a.typing.forget(channel)
		return nil // the channel's budget is spent: a typing indicator can wait
	}
	if _, err := a.restRequest(ctx, rest, http.MethodPost, discordgo.EndpointChannelTyping(channel), nil); err != nil {
		a.typing.forget(channel)
		if isUnauthorized(err) {
			return a.fail(tokenRejected("REST 401 while typing"))
		}
		return fmt.Errorf("typing in channel %s: %w", channel, err)
	}
	return nil
}

func (a *Adapter) configured() (settings, *discordgo.Session, *kit.Budget, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rest == nil {
		return settings{}, nil, nil, errors.New("discord plugin is not configured")
	}
	return a.cfg, a.rest, a.rate, nil
}

// fail ends Run with fe (a token rejected by REST, say) and returns fe.
func (a *Adapter) fail(fe *shared.FatalError) *shared.FatalError { return a.runner.Fail(fe) }

func (a *Adapter) setBot(u *discordgo.User) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.bot = u
}

func (a *Adapter) botID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bot == nil {
		return ""
	}
	return a.bot.ID
}

// typingLimiter remembers when each channel last got a typing indicator.
type typingLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// due reports whether channel needs a new indicator, and if so records it.
func (t *typingLimiter) due(channel string, now time.Time, window time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, ok := t.last[channel]; ok && now.Sub(last) < window {
		return false
	}
	if t.last == nil {
		t.last = map[string]time.Time{}
	}
	for ch, at := range t.last { // keep the map small
		if now.Sub(at) >= window {
			delete(t.last, ch)
		}
	}
	t.last[channel] = now
	return true
}

func (t *typingLimiter) forget(channel string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.last, channel)
}
