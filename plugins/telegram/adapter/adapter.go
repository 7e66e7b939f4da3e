// Package adapter is the Telegram platform: a shared.Platform that long-polls
// the Bot API with getUpdates, turns messages into host events, and posts
// replies split to Telegram's limits. Its main package only calls
// shared.Serve(&adapter.Adapter{}).
package adapter

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-telegram/bot/models"
	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// timing holds the waits the adapter uses; tests shorten them.
type timing struct {
	backoffBase time.Duration
	backoffMax  time.Duration
	stopTimeout time.Duration // how long Stop waits for Run to end
	// historyGrace: on the first start (no cursor), messages older than
	// this are history from before the bot ran, and are not answered.
	historyGrace time.Duration
	// chatRate is each chat's budget for sends and typing together.
	// Telegram asks bots to keep to about one message a second per chat
	// (20 a minute in groups) and answers 429 past that; a short burst
	// lets a reply of a few parts go out at once.
	chatRate kit.Rate
}

var defaultTiming = timing{
	backoffBase:  time.Second,
	backoffMax:   time.Minute,
	stopTimeout:  1500 * time.Millisecond,
	historyGrace: time.Minute,
	chatRate:     kit.Rate{Every: time.Second, Burst: 3},
}

// Adapter is the Telegram platform plugin. The zero value is ready for
// Describe and Configure.
type Adapter struct {
	// tune overrides defaultTiming when set (tests).
	tune timing

	mu       sync.Mutex
	cfg      settings
	cursor   string
	log      hclog.Logger
	api      *api
	me       *models.User
	rejected *shared.FatalError // set once Telegram refused the token: no more requests
	runner   kit.Runner

	budget *kit.Budget // per chat: sends and typing, honouring 429 retry_after
}

var _ shared.Platform = (*Adapter)(nil)

// Describe returns the plugin's name and config schema.
func (a *Adapter) Describe(context.Context) (shared.Description, error) {
	return shared.Description{
		Name:        "telegram",
		Version:     shared.Version,
		Description: "Telegram bot (long polling): answers private chats and @mentions, replies and /commands in groups, with forum topics, typing and long replies split",
		Schema:      schema,
	}, nil
}

// Configure validates the config block and prepares the client. It makes no
// request: the token is checked when Run starts.
func (a *Adapter) Configure(_ context.Context, cfg shared.Config) error {
	s, err := parseSettings(cfg)
	if err != nil {
		return err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	logger = logger.Named("telegram")
	client, err := newAPI(s, logger)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.runner.Running() {
		client.close()
		return errors.New("telegram plugin: Configure called while running")
	}
	if a.api != nil {
		a.api.close()
	}
	if a.tune.backoffBase == 0 {
		a.tune = defaultTiming
	}
	if a.budget == nil {
		a.budget = kit.NewBudget(a.tune.chatRate)
	}
	a.cfg, a.cursor, a.api, a.log, a.rejected = s, cfg.Cursor, client, logger, nil
	a.runner.Name = "telegram plugin"
	a.log.Debug("configured", "api_url", s.apiURL, "require_mention", s.access.RequireMention,
		"poll_timeout", s.pollTimeout.String(), "delete_webhook", s.deleteWebhook, "cursor", cfg.Cursor)
	return nil
}

// Stop ends Run, which ends its long poll, and waits (bounded) for it.
func (a *Adapter) Stop(ctx context.Context) error {
	a.mu.Lock()
	client, wait := a.api, a.tune.stopTimeout
	a.mu.Unlock()
	if wait == 0 {
		wait = defaultTiming.stopTimeout
	}
	err := a.runner.Stop(ctx, wait)
	if client != nil {
		client.close()
	}
	return err
}

// client returns the settings and the API client, or why no request may be
// made: not configured, or the token was rejected.
func (a *Adapter) client() (settings, *api, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.api == nil:
		return settings{}, nil, errors.New("telegram plugin is not configured")
	case a.rejected != nil:
		return settings{}, nil, a.rejected
	}
	return a.cfg, a.api, nil
}

// reject records that Telegram refused the token (found by call, err), so no
// further request is made with it, ends Run, and returns the fatal error.
func (a *Adapter) reject(err error) *shared.FatalError {
	a.mu.Lock()
	if a.rejected == nil {
		a.rejected = tokenRejected(err)
	}
	fe := a.rejected
	a.mu.Unlock()
	return a.runner.Fail(fe)
}

func (a *Adapter) setMe(u *models.User) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.me = u
}
