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
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/net/netutil"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
	"github.com/plughost/gateway/shared/webguard"
)

// The defaults of the config block, written once: the schema hands them
// to the host, which applies them; Configure falls back to them only for
// a config with no JSON at all (tests).
const (
	defaultListen  = "127.0.0.1:8788"
	defaultMaxBody = 65536
	defaultTimeout = 120 * time.Second
)

// settings is the plugin's config block.
type settings struct {
	Listen               string   `json:"listen"`
	AuthToken            string   `json:"auth_token"`
	MaxBody              int64    `json:"max_body"`
	Timeout              string   `json:"timeout"`
	MaxConnections       int      `json:"max_connections"`
	AllowedHosts         []string `json:"allowed_hosts"`
	AllowedOrigins       []string `json:"allowed_origins"`
	AllowUnauthenticated bool     `json:"allow_unauthenticated"`
	WebUI                bool     `json:"web_ui"`
}

// defaultMaxConnections bounds the connections the listener holds at once
// unless max_connections says otherwise: well under the file-descriptor
// limit, so a flood of idle connections cannot exhaust the plugin.
const defaultMaxConnections = 512

// Timeouts of the listener's connections. A request waits up to the
// configured timeout for its reply, so writes may take that long and more.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	idleTimeout       = 60 * time.Second
	writeGrace        = 10 * time.Second
)

// adapter serves the HTTP API. Each POST becomes one inbound message whose
// id is registered as pending; the host's Send with that id as ReplyToID
// completes the request.
type adapter struct {
	logger  hclog.Logger
	cfg     settings
	timeout time.Duration
	// handler is the API behind the Host/Origin/Content-Type guard.
	handler http.Handler

	nextID  atomic.Uint64
	idBase  string
	mu      sync.Mutex
	pending map[string]*waiter
	// link is the host connection while Run forwards events; nil otherwise.
	link *hostLink

	stopOnce sync.Once
	stopped  chan struct{}
}

var _ shared.Platform = (*adapter)(nil)

// hostLink is one Run's connection to the host. Requests hand their message
// to events and wait for the reply until done is closed: Run closes it when
// it stops forwarding, and waits for every hand-over in progress, so nothing
// is sent on events after Run returns.
type hostLink struct {
	events   chan<- shared.Event
	done     chan struct{}
	handover sync.WaitGroup
}

func newAdapter() *adapter {
	return &adapter{
		logger:  hclog.NewNullLogger(),
		pending: map[string]*waiter{},
		stopped: make(chan struct{}),
		idBase:  strconv.FormatInt(time.Now().UnixNano(), 36),
	}
}

// Describe implements shared.Platform.
func (a *adapter) Describe(context.Context) (shared.Description, error) {
	return shared.Description{
		Name:        "http",
		Version:     shared.Version,
		Description: "HTTP API: POST /v1/messages {session, text} answers with the agent's reply (\"stream\": true: as server-sent events)",
		Schema: []shared.Attribute{
			{Name: "listen", Type: shared.TypeString, Default: defaultListen,
				Description: "address to listen on, host:port"},
			{Name: "auth_token", Type: shared.TypeString, Sensitive: true,
				Description: "when set, requests must carry Authorization: Bearer TOKEN"},
			{Name: "max_body", Type: shared.TypeNumber, Default: defaultMaxBody,
				Description: "largest request body in bytes; larger ones get 413"},
			{Name: "timeout", Type: shared.TypeDuration, Default: "120s",
				Description: "how long a request waits for the reply before 504"},
			{Name: "max_connections", Type: shared.TypeNumber, Default: defaultMaxConnections,
				Description: "most client connections held open at once; more wait to be accepted"},
			{Name: "allowed_hosts", Type: shared.TypeListOfString,
				Description: "host names (besides IP addresses, localhost and the listen host) the Host header may carry"},
			{Name: "allowed_origins", Type: shared.TypeListOfString,
				Description: "origins (https://app.example.com) whose web pages may call the API cross-origin"},
			{Name: "allow_unauthenticated", Type: shared.TypeBool, Default: false,
				Description: "serve a non-loopback listen address without auth_token (anyone who can reach it may chat)"},
			{Name: "web_ui", Type: shared.TypeBool, Default: true,
				Description: "serve the web chat page on GET /"},
		},
	}, nil
}

// Configure implements shared.Platform.
func (a *adapter) Configure(_ context.Context, cfg shared.Config) error {
	if cfg.Logger != nil {
		a.logger = cfg.Logger
	}
	// A second Configure starts from scratch.
	a.cfg = settings{Listen: defaultListen, MaxBody: defaultMaxBody, Timeout: defaultTimeout.String(),
		MaxConnections: defaultMaxConnections, WebUI: true}
	if err := cfg.Decode(&a.cfg); err != nil {
		return kit.InvalidConfig(err.Error(), "")
	}
	// A port that can never be listened on is a config error, not something
	// a restart fixes; a port in use is (Run reports that as transient).
	_, port, err := net.SplitHostPort(a.cfg.Listen)
	if err == nil {
		_, err = net.LookupPort("tcp", port)
	}
	if err != nil {
		return kit.InvalidConfig(fmt.Sprintf("listen %q is not host:port", a.cfg.Listen), `use e.g. "127.0.0.1:8788"`)
	}
	if a.cfg.AuthToken == "" && !a.cfg.AllowUnauthenticated && !webguard.Loopback(a.cfg.Listen) {
		return kit.InvalidConfig(fmt.Sprintf("listen %q is reachable from other machines, but auth_token is empty", a.cfg.Listen),
			"set auth_token (check the env var it comes from), listen on 127.0.0.1, or set allow_unauthenticated = true to serve everyone who can reach it")
	}
	if a.cfg.MaxBody <= 0 {
		// Zero is not "the default": a body limit of nothing is a mistake.
		return kit.InvalidConfig(fmt.Sprintf("max_body %d is not a positive number of bytes", a.cfg.MaxBody), "leave it out for 65536")
	}
	if limit := int64(shared.MaxReplyBytesLimit); a.cfg.MaxBody > limit {
		// A message must fit in one plugin protocol message to the host.
		return &shared.FatalError{Code: "invalid_config",
			Message: fmt.Sprintf("max_body %d is over the limit of %d bytes", a.cfg.MaxBody, limit), Hint: "lower max_body"}
	}
	if a.cfg.MaxConnections <= 0 {
		return kit.InvalidConfig(fmt.Sprintf("max_connections %d is not a positive number", a.cfg.MaxConnections),
			fmt.Sprintf("leave it out for %d", defaultMaxConnections))
	}
	// Leave half the descriptors for everything else the plugin does.
	var nofile syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile); err == nil && nofile.Cur > 0 && uint64(a.cfg.MaxConnections) > nofile.Cur/2 {
		a.logger.Warn("max_connections is above half the file-descriptor limit; lowering it", "max_connections", a.cfg.MaxConnections, "limit", nofile.Cur, "using", nofile.Cur/2)
		a.cfg.MaxConnections = int(nofile.Cur / 2)
	}
	guarded, err := webguard.Wrap(a.routes(), webguard.Options{Listen: a.cfg.Listen,
		AllowedHosts: a.cfg.AllowedHosts, AllowedOrigins: a.cfg.AllowedOrigins})
	if err != nil {
		return kit.InvalidConfig(err.Error(), `list origins as "https://host[:port]"`)
	}
	a.handler = guarded
	a.timeout, err = kit.ParseDuration("timeout", a.cfg.Timeout, defaultTimeout)
	return err
}

// Run implements shared.Platform: it serves HTTP until ctx ends or Stop.
func (a *adapter) Run(ctx context.Context, events chan<- shared.Event) error {
	select {
	case <-a.stopped:
		return nil // stopped before it ran: do not open the port
	default:
	}
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		// Transient: the port may still be held by a process going away.
		return fmt.Errorf("listening on %s: %w", a.cfg.Listen, err)
	}
	ln = netutil.LimitListener(ln, a.cfg.MaxConnections)
	srv := &http.Server{Handler: a.handler, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
		WriteTimeout: a.timeout + writeGrace, IdleTimeout: idleTimeout, MaxHeaderBytes: 64 << 10}
	link := &hostLink{events: events, done: make(chan struct{})}
	a.mu.Lock()
	a.link = link
	a.mu.Unlock()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	a.logger.Info("listening", "addr", ln.Addr().String(), "open_to", a.openTo(), "max_connections", a.cfg.MaxConnections)
	select {
	case events <- shared.Event{Health: &shared.Health{State: shared.Connected, Message: "listening on " + ln.Addr().String()}}:
	case <-ctx.Done():
	case <-a.stopped:
	}

	select {
	case <-ctx.Done():
	case <-a.stopped:
	case err = <-serveErr:
	}
	// Disconnect first: requests waiting for a reply answer 503 at once
	// (none can come now), which lets Shutdown finish promptly.
	a.mu.Lock()
	a.link = nil
	a.mu.Unlock()
	close(link.done)
	link.handover.Wait()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving HTTP: %w", err)
	}
	return nil
}

// openTo says who may talk to the listener, for the log.
func (a *adapter) openTo() string {
	switch {
	case a.cfg.AuthToken != "":
		return "holders of auth_token"
	case webguard.Loopback(a.cfg.Listen):
		return "anyone on this machine (loopback, no auth_token)"
	default:
		return "anyone who can reach " + a.cfg.Listen + " (allow_unauthenticated, no auth_token)"
	}
}

// Send implements shared.Platform: it completes the request that asked.
func (a *adapter) Send(_ context.Context, r shared.Reply) ([]string, error) {
	return a.complete(r, r.Kind == shared.KindError)
}

// complete hands the final reply to the request waiting for it.
func (a *adapter) complete(r shared.Reply, failed bool) ([]string, error) {
	a.mu.Lock()
	w, ok := a.pending[r.ReplyToID]
	delete(a.pending, r.ReplyToID)
	a.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no request is waiting for a reply to %q (it timed out or the client left)", r.ReplyToID)
	}
	w.finish(r, failed) // never blocks
	return []string{r.ReplyToID}, nil
}

// Typing implements shared.Platform: HTTP has no typing indicator.
func (a *adapter) Typing(context.Context, shared.Conversation) error { return nil }

// Stop implements shared.Platform.
func (a *adapter) Stop(context.Context) error {
	a.stopOnce.Do(func() { close(a.stopped) })
	return nil
}

// connected reports whether a Run is forwarding events to the host.
func (a *adapter) connected() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.link != nil
}

// submit hands msg (its conversation, user and text set; submit sets its
// id and times) to the host and returns the channel its reply comes
// on and the link it went over. It gives up with errNotConnected when no Run
// is forwarding events, or when the host takes nothing before expire fires
// (its event stream is stalled: the host is not really connected).
func (a *adapter) submit(ctx context.Context, msg *shared.Message, expire <-chan time.Time) (string, *waiter, *hostLink, error) {
	a.mu.Lock()
	link := a.link
	if link == nil {
		a.mu.Unlock()
		return "", nil, nil, errNotConnected
	}
	link.handover.Add(1)
	defer link.handover.Done()
	id := a.idBase + "-" + strconv.FormatUint(a.nextID.Add(1), 10)
	// Only a request that asked for server-sent events (msg.Stream) is
	// streamed.
	w := newWaiter(msg.Stream)
	a.pending[id] = w
	a.mu.Unlock()
	now := time.Now()
	msg.ID, msg.Direct, msg.UnixNano = id, true, now.UnixNano()
	// The request gives up after timeout: no turn starts after that.
	msg.ExpiresUnixNano = now.Add(a.timeout).UnixNano()
	a.logger.Debug("message received", "session", shared.LogValue(msg.ConversationID), "id", id, "bytes", len(msg.Text))
	select {
	case link.events <- shared.Event{Message: msg}:
		return id, w, link, nil
	case <-ctx.Done():
		a.forget(id)
		return "", nil, nil, ctx.Err()
	case <-link.done:
		a.forget(id)
		return "", nil, nil, errNotConnected
	case <-expire:
		a.forget(id)
		return "", nil, nil, errHostStalled
	}
}

func (a *adapter) forget(id string) {
	a.mu.Lock()
	delete(a.pending, id)
	a.mu.Unlock()
}

var (
	errNotConnected = errors.New("the gateway host is not connected")
	errHostStalled  = errors.New("the gateway host is not taking messages")
)
