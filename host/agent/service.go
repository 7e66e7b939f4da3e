package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/shared"
)

// Defaults for zero config values.
const (
	DefaultModel     = "echo/echo"
	DefaultMaxAgents = 128
	DefaultIdleTTL   = time.Hour
	// DefaultMaxReplyBytes is max_reply_bytes when the config leaves it 0.
	DefaultMaxReplyBytes = 64 << 10
	// DefaultGrace is how long an evicted agent's reply may keep running
	// before it is cancelled so that the agent can be closed.
	DefaultGrace = 30 * time.Second
)

// Config is the agent layer's settings: the agent and cache blocks and the
// providers, in config order.
type Config struct {
	Providers []provider.Config
	// Model is the default PROVIDER/MODEL; DefaultModel if empty.
	Model        string
	SystemPrompt string
	// HistoryLimit is how many messages of history a turn sends; 0
	// sends none (each message is answered on its own).
	HistoryLimit int
	// MaxAgents and IdleTTL bound the agent cache; DefaultMaxAgents and
	// DefaultIdleTTL if 0.
	MaxAgents int
	IdleTTL   time.Duration
	// MaxReplyBytes caps a reply where it is produced (max_reply_bytes);
	// DefaultMaxReplyBytes if 0, at most shared.MaxReplyBytesLimit.
	MaxReplyBytes int
	// Tools and MaxToolRounds are the default agent's tools (see Named).
	Tools         []string
	MaxToolRounds int
	// Agents are the named agents beside the default one (whose settings
	// are the fields above).
	Agents []Named
	// Routes maps a platform to the agent its sessions talk to; a platform
	// not listed talks to DefaultAgent.
	Routes map[string]string
}

// Options tunes a Service beyond its config; the zero value is the default.
type Options struct {
	Logger hclog.Logger
	// Now is the clock for idle TTL and session times; default time.Now.
	Now func() time.Time
	// Grace bounds how long an evicted agent's in-flight reply may run on;
	// default DefaultGrace.
	Grace time.Duration
	// SweepInterval is how often idle agents are swept; default idle_ttl/4,
	// between 1s and 1m. Negative disables the sweeper (tests call Sweep).
	SweepInterval time.Duration
	// Retry is the retry policy of OpenAI-compatible providers.
	Retry provider.RetryPolicy
	// OnUsage, if set, is called after each committed turn with the token
	// usage its provider reported (zero when it reported none); ctx is the
	// reply's context, carrying whatever its caller put there.
	OnUsage func(ctx context.Context, key string, u provider.Usage)
	// Tools gives agents their MCP tools; nil offers none.
	Tools ToolSource
	// SharedStore: other hosts write the same sessions (a PostgreSQL store
	// in a cluster), so a cached copy of a session may be stale: every
	// turn reads its session from the store.
	SharedStore bool
}

// Service is the agent layer: agents cache + providers + session store. All
// methods are safe for concurrent use; the router serialises the messages of
// one session.
type Service struct {
	log   hclog.Logger
	now   func() time.Time
	opts  Options
	store store.Backend
	cache *cache
	errs  *errorCounts

	mu        sync.RWMutex // guards cfg, providers and closed
	cfg       Config
	providers map[string]*providerRef
	closed    bool

	flushes sync.WaitGroup // endWrite goroutines waiting for a failed write to settle
	oneOffs sync.WaitGroup // one-off agents in use (see oneOff)
	// running holds the one-off agents in use, guarded by oneOffMu, so
	// that Close can cancel their replies when its deadline passes.
	oneOffMu sync.Mutex
	running  map[*Agent]struct{}

	// When set (tests), loaded runs after a turn read its session from the
	// store and written after a session write, before its agent is evicted:
	// the windows that the cached session copies must survive.
	loaded, written func(key string)

	stopSweep chan struct{}
	sweepDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// SessionStatus describes a session for /status.
type SessionStatus struct {
	Key string `json:"key"`
	// Agent is the name of the agent serving the session.
	Agent string `json:"agent"`
	// Model is the effective PROVIDER/MODEL.
	Model string `json:"model"`
	// Messages is the length of the current transcript.
	Messages int `json:"messages"`
	// Archived counts the transcripts archived by /new.
	Archived int       `json:"archived"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// New builds the configured providers and starts the agent layer on st,
// the session store the caller opened (and closes after Close).
func New(cfg Config, st store.Backend, opts Options) (*Service, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	log := opts.Logger // the host names it ("agent")
	if st == nil {
		return nil, errors.New("agent service: no session store")
	}
	providers, err := buildProviders(cfg, nil, log, opts)
	if err != nil {
		return nil, err
	}
	if err := checkModel(cfg, providers); err != nil {
		closeRefs(providers)
		return nil, err
	}
	maxAgents, ttl := cacheLimits(cfg)
	s := &Service{
		log:       log,
		now:       opts.Now,
		opts:      opts,
		store:     st,
		cache:     newCache(maxAgents, ttl, opts.Grace, opts.Now, log.Named("cache")),
		errs:      newErrorCounts(),
		cfg:       cfg,
		providers: providers,
		stopSweep: make(chan struct{}),
		sweepDone: make(chan struct{}),
	}
	go s.sweeper()
	return s, nil
}

func cacheLimits(cfg Config) (int, time.Duration) {
	maxAgents, ttl := cfg.MaxAgents, cfg.IdleTTL
	if maxAgents <= 0 {
		maxAgents = DefaultMaxAgents
	}
	if ttl <= 0 {
		ttl = DefaultIdleTTL
	}
	return maxAgents, ttl
}

// buildProviders returns the refs for cfg, reusing those of old whose
// settings did not change. On error nothing new is left open.
func buildProviders(cfg Config, old map[string]*providerRef, log hclog.Logger, opts Options) (map[string]*providerRef, error) {
	out := make(map[string]*providerRef, len(cfg.Providers))
	var built []*providerRef
	for _, pc := range cfg.Providers {
		if r, ok := old[pc.Name]; ok && r.conf.Equal(pc) {
			out[pc.Name] = r
			continue
		}
		r, err := newProviderRef(pc, log, opts.Retry)
		if err != nil {
			for _, r := range built {
				r.retire()
			}
			return nil, fmt.Errorf("agent service: %w", err)
		}
		built = append(built, r)
		out[pc.Name] = r
	}
	return out, nil
}

func closeRefs(refs map[string]*providerRef) {
	for _, r := range refs {
		r.retire()
	}
}

// checkModel verifies every agent's default model names a configured
// provider.
func checkModel(cfg Config, providers map[string]*providerRef) error {
	agents := append([]Named{cfg.named(DefaultAgent)}, cfg.Agents...)
	for _, a := range agents {
		m := a.model()
		prov, _, err := splitModel(m)
		if err != nil {
			return fmt.Errorf("agent service: agent %q model: %w", a.Name, err)
		}
		if _, ok := providers[prov]; !ok {
			return fmt.Errorf("agent service: agent %q model %q: no provider %q is configured", a.Name, m, prov)
		}
	}
	return nil
}

func defaultModel(cfg Config) string {
	if cfg.Model == "" {
		return DefaultModel
	}
	return cfg.Model
}

// splitModel splits PROVIDER/MODEL at the first slash; MODEL may contain
// slashes (OpenRouter's "anthropic/claude-3.5-sonnet").
func splitModel(m string) (prov, model string, err error) {
	prov, model, ok := strings.Cut(m, "/")
	if !ok || prov == "" || model == "" {
		return "", "", fmt.Errorf("%q is not PROVIDER/MODEL", m)
	}
	return prov, model, nil
}

// specFor resolves a session's agent and effective model into an agent spec.
func (s *Service) specFor(key, model string) (spec, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	named := s.cfg.named(s.cfg.agentOf(key))
	prov, remote, err := splitModel(model)
	if err != nil {
		return spec{}, &UserError{Message: fmt.Sprintf("this session's model %s; switch with /model PROVIDER/MODEL", err), Err: err}
	}
	ref, ok := s.providers[prov]
	if !ok {
		return spec{}, &UserError{Message: fmt.Sprintf("this session's model %q needs provider %q, which is not configured; switch with /model (providers: %s)",
			model, prov, strings.Join(s.modelsLocked(), ", "))}
	}
	limit := max(named.HistoryLimit, 0) // 0: no history
	return spec{ref: ref, model: model, remoteModel: remote, systemPrompt: named.SystemPrompt, historyLimit: limit,
		agent: named.Name, tools: named.toolKey(), maxToolRounds: named.MaxToolRounds}, nil
}

// effectiveModel is the session's model: its override, else its agent's.
func (s *Service) effectiveModel(key, override string) string {
	if override != "" {
		return override
	}
	return s.agentFor(key).model()
}

func (s *Service) historyLimit(key string) int {
	return max(s.agentFor(key).HistoryLimit, 0) // 0: no history
}

// Reset starts a fresh session (/new): the transcript is archived and the
// session's agent is evicted with ReasonReset.
func (s *Service) Reset(ctx context.Context, key string) error {
	s.cache.beginWrite(key)
	err := s.store.Reset(ctx, key)
	if s.written != nil {
		s.written(key)
	}
	s.endWrite(key, ReasonReset, err)
	if err != nil {
		return fmt.Errorf("reset session %s: %w", shared.LogValue(key), err)
	}
	return nil
}

// endWrite ends a session write begun with cache.beginWrite: on success the
// session's agent is evicted with reason. A failed write may still land (its
// ctx ended while it was queued), so the session stays in flight (its cached
// copy unused) until the store has committed whatever was queued.
func (s *Service) endWrite(key string, reason Reason, err error) {
	if err == nil || errors.Is(err, store.ErrClosed) {
		if err != nil {
			reason = ""
		}
		s.cache.endWrite(key, reason)
		return
	}
	s.mu.RLock() // orders Go before Close's Wait
	defer s.mu.RUnlock()
	if s.closed {
		s.cache.endWrite(key, "")
		return
	}
	s.flushes.Go(func() {
		_ = s.store.Flush(context.Background())
		s.cache.endWrite(key, "")
	})
}

// Model returns the session's effective PROVIDER/MODEL.
func (s *Service) Model(key string) (string, error) {
	sess, err := s.store.Session(key)
	if err != nil {
		return "", fmt.Errorf("session %s: %w", shared.LogValue(key), err)
	}
	return s.effectiveModel(key, sess.Model), nil
}

// SetModel switches the session to model (PROVIDER/MODEL with a configured
// provider), persists it and evicts the session's agent with
// ReasonModelSwitch. An invalid model is a *UserError.
func (s *Service) SetModel(ctx context.Context, key, model string) error {
	prov, _, err := splitModel(model)
	if err != nil {
		return &UserError{Message: fmt.Sprintf("%s: use /model PROVIDER/MODEL, for example %s", err, s.example()), Err: err}
	}
	s.mu.RLock()
	_, ok := s.providers[prov]
	names := s.modelsLocked()
	s.mu.RUnlock()
	if !ok {
		return &UserError{Message: fmt.Sprintf("no provider %q is configured (providers: %s)", prov, strings.Join(names, ", "))}
	}
	s.cache.beginWrite(key)
	err = s.store.SetModel(ctx, key, model)
	if s.written != nil {
		s.written(key)
	}
	s.endWrite(key, ReasonModelSwitch, err)
	if err != nil {
		return fmt.Errorf("set model of session %s: %w", shared.LogValue(key), err)
	}
	return nil
}

func (s *Service) example() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return defaultModel(s.cfg)
}

// Models returns the configured provider names, in config order, for /model
// without an argument.
func (s *Service) Models() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.modelsLocked()
}

func (s *Service) modelsLocked() []string {
	out := make([]string, 0, len(s.cfg.Providers))
	for _, p := range s.cfg.Providers {
		out = append(out, p.Name)
	}
	return out
}

// Session describes the session for /status.
func (s *Service) Session(key string) (SessionStatus, error) {
	sess, err := s.store.Session(key)
	if err != nil {
		return SessionStatus{}, fmt.Errorf("session %s: %w", shared.LogValue(key), err)
	}
	return SessionStatus{
		Key:      key,
		Agent:    s.AgentOf(key),
		Model:    s.effectiveModel(key, sess.Model),
		Messages: sess.Messages,
		Archived: int(sess.Epoch),
		Created:  sess.Created,
		Updated:  sess.Updated,
	}, nil
}

// Stats returns the cache counters for /v1/status.
func (s *Service) Stats() CacheStats { return s.cache.stats() }
