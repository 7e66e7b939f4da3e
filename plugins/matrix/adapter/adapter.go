// Package adapter is the Matrix platform: a shared.Platform that follows a
// bot account's /sync long poll, turns room messages into host events, and
// sends replies with stable transaction ids. End-to-end encryption is not
// supported: encrypted rooms are never answered (one warning per room).
// Its main package only calls shared.Serve(&adapter.Adapter{}).
package adapter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// timing holds the waits the adapter uses; tests shorten them.
type timing struct {
	pollTimeout time.Duration // the /sync long-poll timeout
	backoffBase time.Duration
	backoffMax  time.Duration
	stopTimeout time.Duration // how long Stop waits for Run to end
	sendRetries int           // attempts per reply part on transient errors
}

var defaultTiming = timing{
	pollTimeout: 30 * time.Second,
	backoffBase: time.Second,
	backoffMax:  time.Minute,
	stopTimeout: 1500 * time.Millisecond,
	sendRetries: 4,
}

// Adapter is the Matrix platform plugin. The zero value is ready for
// Describe and Configure.
type Adapter struct {
	// tune overrides defaultTiming when set (tests).
	tune timing

	mu        sync.Mutex
	cfg       settings
	log       hclog.Logger
	client    *mautrix.Client
	transport *http.Transport
	cursor    string // the sync token the host kept, "" on first start
	botID     id.UserID
	botName   string
	runner    kit.Runner

	// limit holds back sends to a room the homeserver rate limited
	// (M_LIMIT_EXCEEDED's retry_after_ms), so one busy room does not slow
	// the others.
	limit *kit.Budget
	rooms rooms
	sent  sentEvents
}

var _ shared.Platform = (*Adapter)(nil)

// Describe returns the plugin's name and config schema.
func (a *Adapter) Describe(context.Context) (shared.Description, error) {
	return shared.Description{
		Name:    "matrix",
		Version: shared.Version,
		Description: "Matrix bot: answers direct chats and mentions in rooms over /sync, " +
			"with threads, typing and Markdown replies (no end-to-end encryption)",
		Schema: schema,
	}, nil
}

// Configure validates the config block and prepares the client. It does not
// touch the network: the token is checked when Run starts.
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
		return errors.New("matrix plugin: Configure called while running")
	}
	if a.tune.pollTimeout == 0 {
		a.tune = defaultTiming
	}
	if a.transport != nil {
		a.transport.CloseIdleConnections()
	}
	client, transport, err := newClient(s, a.tune)
	if err != nil {
		return invalidConfig(err.Error(), "")
	}
	a.cfg, a.client, a.transport, a.cursor = s, client, transport, cfg.Cursor
	a.log = logger.Named("matrix")
	a.runner.Name = "matrix plugin"
	if a.limit == nil {
		a.limit = kit.NewBudget(kit.Rate{}) // no rate of its own: only the homeserver's retry-after
	}
	a.log.Debug("configured", "homeserver", s.homeserver.String(), "require_mention", s.access.RequireMention,
		"auto_join", s.autoJoin, "resuming", cfg.Cursor != "")
	return nil
}

// newClient builds a mautrix client with its own bounded transport and no
// retries of its own: the adapter decides what a failure means.
func newClient(s settings, t timing) (*mautrix.Client, *http.Transport, error) {
	client, err := mautrix.NewClient(s.homeserver.String(), "", s.token)
	if err != nil {
		return nil, nil, fmt.Errorf("homeserver %q: %w", s.homeserver.String(), err)
	}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: t.pollTimeout + 30*time.Second,
	}
	client.Client = &http.Client{Transport: transport, Timeout: t.pollTimeout + 60*time.Second}
	client.DefaultHTTPRetries = 0
	client.UserAgent = "gateway-plugin-matrix/" + shared.Version
	return client, transport, nil
}

// Stop ends Run and waits (bounded) for it to finish.
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

func (a *Adapter) configured() (settings, *mautrix.Client, error) {
	s, client, _, err := a.clients()
	return s, client, err
}

// clients is configured with the per-room rate limits.
func (a *Adapter) clients() (settings, *mautrix.Client, *kit.Budget, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.client == nil {
		return settings{}, nil, nil, errors.New("matrix plugin is not configured")
	}
	return a.cfg, a.client, a.limit, nil
}

// fail ends Run with fe (a token rejected while sending, say) and returns fe.
func (a *Adapter) fail(fe *shared.FatalError) *shared.FatalError { return a.runner.Fail(fe) }

func (a *Adapter) setBot(uid id.UserID, name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.botID, a.botName = uid, name
}

func (a *Adapter) bot() (id.UserID, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.botID, a.botName
}
