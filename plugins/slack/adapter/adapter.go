// Package adapter is the Slack platform: a shared.Platform that keeps one
// Socket Mode connection to Slack, turns message events into host messages
// (acknowledging each envelope only once the host has taken it), and posts
// replies with the Web API, split to Slack's limits. Its main package only
// calls shared.Serve(&adapter.Adapter{}).
package adapter

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/slack-go/slack"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// timing holds the waits the adapter uses; tests shorten them.
type timing struct {
	openTimeout time.Duration // websocket dial + hello, and each write
	// pingTimeout is how long a connection may stay silent (no ping, no
	// message) before it is taken for dead and replaced.
	pingTimeout time.Duration
	backoffBase time.Duration
	backoffMax  time.Duration
	stableAfter time.Duration // a connection up this long resets the backoff
	stopTimeout time.Duration // how long Stop waits for Run to end
	httpTimeout time.Duration // one Web API call
	// channelRate is each channel's budget for chat.postMessage: Slack
	// allows about one message per second per channel, with short bursts.
	channelRate kit.Rate
}

var defaultTiming = timing{
	openTimeout: 10 * time.Second,
	pingTimeout: 30 * time.Second,
	backoffBase: time.Second,
	backoffMax:  time.Minute,
	stableAfter: 30 * time.Second,
	stopTimeout: 1500 * time.Millisecond,
	httpTimeout: 20 * time.Second,
	channelRate: kit.Rate{Every: time.Second, Burst: 5},
}

// Adapter is the Slack platform plugin. The zero value is ready for
// Describe and Configure.
type Adapter struct {
	// tune overrides defaultTiming when set (tests).
	tune timing

	mu        sync.Mutex
	cfg       settings
	log       hclog.Logger
	api       *slack.Client
	transport *http.Transport
	botUserID string
	botID     string
	// dead is the fatal error that ended the plugin: once set, no request
	// is made with the tokens until Configure is called again.
	dead   *shared.FatalError
	runner kit.Runner

	rate    *kit.Budget // per channel: posts and their Retry-After
	seen    recentSet   // message ids the host has taken
	threads recentSet   // threads the bot has answered in
}

var _ shared.Platform = (*Adapter)(nil)

// Describe returns the plugin's name and config schema.
func (a *Adapter) Describe(context.Context) (shared.Description, error) {
	return shared.Description{
		Name:        "slack",
		Version:     shared.Version,
		Description: "Slack app over Socket Mode: answers DMs and @mentions in channels, in threads, with long replies split",
		Schema:      schema,
	}, nil
}

// Configure validates the config block and prepares the Web API client. It
// does not touch the network: the tokens are checked when Run starts.
func (a *Adapter) Configure(_ context.Context, cfg shared.Config) error {
	s, err := parseSettings(cfg)
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
		return errors.New("slack plugin: Configure called while running")
	}
	if a.tune.openTimeout == 0 {
		a.tune = defaultTiming
	}
	if a.transport != nil {
		a.transport.CloseIdleConnections()
	}
	a.transport = http.DefaultTransport.(*http.Transport).Clone()
	a.api = slack.New(s.botToken,
		slack.OptionAPIURL(s.apiURL),
		slack.OptionAppLevelToken(s.appToken),
		slack.OptionHTTPClient(&http.Client{Timeout: a.tune.httpTimeout, Transport: a.transport}),
	)
	a.cfg, a.log, a.dead = s, logger.Named("slack"), nil
	a.runner.Name = "slack plugin"
	a.rate = kit.NewBudget(a.tune.channelRate)
	a.log.Debug("configured", "api_url", s.apiURL, "require_mention", s.access.RequireMention,
		"reply_in_thread", s.replyInThread, "allowed_users", len(s.access.Users), "allowed_channels", len(s.access.Chats))
	return nil
}

// Stop ends Run, closing the Socket Mode connection, and waits (bounded)
// for it to finish.
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

// Typing does nothing: Slack has no typing indicator for bots outside the
// legacy RTM API.
func (a *Adapter) Typing(context.Context, shared.Conversation) error { return nil }

// client returns the settings and Web API client, or the fatal error that
// ended the plugin (so nothing more is sent with a rejected token).
func (a *Adapter) client() (settings, *slack.Client, error) {
	s, api, _, err := a.clients()
	return s, api, err
}

// clients is client with the per-channel rate budget.
func (a *Adapter) clients() (settings, *slack.Client, *kit.Budget, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.dead != nil:
		return settings{}, nil, nil, a.dead
	case a.api == nil:
		return settings{}, nil, nil, errors.New("slack plugin is not configured")
	}
	return a.cfg, a.api, a.rate, nil
}

// fail records fe as the end of the plugin, ends Run with it, and returns
// it. Only the first fatal error is kept and logged.
func (a *Adapter) fail(fe *shared.FatalError) *shared.FatalError {
	a.mu.Lock()
	if a.dead != nil {
		fe = a.dead
		a.mu.Unlock()
		return fe
	}
	a.dead = fe
	a.mu.Unlock()
	return a.runner.Fail(fe)
}

func (a *Adapter) setBot(userID, botID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.botUserID, a.botID = userID, botID
}

func (a *Adapter) bot() (userID, botID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.botUserID, a.botID
}
