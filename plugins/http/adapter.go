package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/shared"
)

// version is the plugin's version, set at build time.
var version = "dev"

// settings is the plugin's config block.
type settings struct {
	Listen    string `json:"listen"`
	AuthToken string `json:"auth_token"`
	MaxBody   int64  `json:"max_body"`
	Timeout   string `json:"timeout"`
}

// adapter serves the HTTP API. Each POST becomes one inbound message whose
// id is registered as pending; the host's Send with that id as ReplyToID
// completes the request.
type adapter struct {
	logger  hclog.Logger
	cfg     settings
	timeout time.Duration

	// connected is true while Run is forwarding events to the host.
	connected atomic.Bool
	events    atomic.Pointer[chan<- shared.Event]

	nextID  atomic.Uint64
	idBase  string
	mu      sync.Mutex
	pending map[string]chan shared.Reply

	stopOnce sync.Once
	stopped  chan struct{}
}

var _ shared.Platform = (*adapter)(nil)

func newAdapter() *adapter {
	return &adapter{
		logger:  hclog.NewNullLogger(),
		pending: map[string]chan shared.Reply{},
		stopped: make(chan struct{}),
		idBase:  strconv.FormatInt(time.Now().UnixNano(), 36),
	}
}

// Describe implements shared.Platform.
func (a *adapter) Describe(context.Context) (shared.Description, error) {
	return shared.Description{
		Name:        "http",
		Version:     version,
		Description: "HTTP API: POST /v1/messages {session, text} answers with the agent's reply",
		Schema: []shared.Attribute{
			{Name: "listen", Type: shared.TypeString, Default: "127.0.0.1:8788",
				Description: "address to listen on, host:port"},
			{Name: "auth_token", Type: shared.TypeString, Sensitive: true,
				Description: "when set, requests must carry Authorization: Bearer TOKEN"},
			{Name: "max_body", Type: shared.TypeNumber, Default: 65536,
				Description: "largest request body in bytes; larger ones get 413"},
			{Name: "timeout", Type: shared.TypeDuration, Default: "120s",
				Description: "how long a request waits for the reply before 504"},
		},
	}, nil
}

// Configure implements shared.Platform.
func (a *adapter) Configure(_ context.Context, cfg shared.Config) error {
	if cfg.Logger != nil {
		a.logger = cfg.Logger
	}
	if err := cfg.Decode(&a.cfg); err != nil {
		return &shared.FatalError{Code: "invalid_config", Message: err.Error()}
	}
	if _, _, err := net.SplitHostPort(a.cfg.Listen); err != nil {
		return &shared.FatalError{Code: "invalid_config",
			Message: fmt.Sprintf("listen %q is not host:port", a.cfg.Listen), Hint: `use e.g. "127.0.0.1:8788"`}
	}
	if a.cfg.MaxBody <= 0 {
		a.cfg.MaxBody = 65536
	}
	a.timeout = 120 * time.Second
	if a.cfg.Timeout != "" {
		d, err := time.ParseDuration(a.cfg.Timeout)
		if err != nil || d <= 0 {
			return &shared.FatalError{Code: "invalid_config", Message: fmt.Sprintf("timeout %q is not a positive duration", a.cfg.Timeout)}
		}
		a.timeout = d
	}
	return nil
}

// Run implements shared.Platform: it serves HTTP until ctx ends or Stop.
func (a *adapter) Run(ctx context.Context, events chan<- shared.Event) error {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		// Transient: the port may still be held by a process going away.
		return fmt.Errorf("listening on %s: %w", a.cfg.Listen, err)
	}
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	a.events.Store(&events)
	a.connected.Store(true)
	a.logger.Info("listening", "addr", ln.Addr().String())
	select {
	case events <- shared.Event{Health: &shared.Health{State: shared.Connected, Message: "listening on " + ln.Addr().String()}}:
	case <-ctx.Done():
	}

	select {
	case <-ctx.Done():
	case <-a.stopped:
	case err = <-serveErr:
	}
	a.connected.Store(false)
	a.events.Store(nil)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving HTTP: %w", err)
	}
	return nil
}

// Send implements shared.Platform: it completes the request that asked.
func (a *adapter) Send(_ context.Context, r shared.Reply) ([]string, error) {
	a.mu.Lock()
	ch, ok := a.pending[r.ReplyToID]
	delete(a.pending, r.ReplyToID)
	a.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no request is waiting for a reply to %q (it timed out or the client left)", r.ReplyToID)
	}
	ch <- r // buffered: never blocks
	return []string{r.ReplyToID}, nil
}

// Typing implements shared.Platform: HTTP has no typing indicator.
func (a *adapter) Typing(context.Context, shared.Conversation) error { return nil }

// Stop implements shared.Platform.
func (a *adapter) Stop(context.Context) error {
	a.stopOnce.Do(func() { close(a.stopped) })
	return nil
}

// submit hands a message to the host and returns the channel its reply comes on.
func (a *adapter) submit(ctx context.Context, session, text string) (string, chan shared.Reply, error) {
	evp := a.events.Load()
	if evp == nil || !a.connected.Load() {
		return "", nil, errNotConnected
	}
	id := a.idBase + "-" + strconv.FormatUint(a.nextID.Add(1), 10)
	ch := make(chan shared.Reply, 1)
	a.mu.Lock()
	a.pending[id] = ch
	a.mu.Unlock()
	msg := &shared.Message{
		ID: id, ConversationID: session, UserID: session, UserName: session,
		Direct: true, Text: text, UnixNano: time.Now().UnixNano(),
	}
	select {
	case *evp <- shared.Event{Message: msg}:
		return id, ch, nil
	case <-ctx.Done():
		a.forget(id)
		return "", nil, ctx.Err()
	case <-a.stopped:
		a.forget(id)
		return "", nil, errNotConnected
	}
}

func (a *adapter) forget(id string) {
	a.mu.Lock()
	delete(a.pending, id)
	a.mu.Unlock()
}

var errNotConnected = errors.New("the gateway host is not connected")
