package supervisor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/shared"
)

// ErrNotConnected is returned by Send and Typing when the platform has no
// connected plugin.
var ErrNotConnected = errors.New("platform is not connected")

// ErrUnknownPlatform is returned for a platform name the supervisor does not run.
var ErrUnknownPlatform = errors.New("unknown platform")

// Handler receives inbound messages. It is called from the platform's event
// loop and must return quickly.
type Handler func(platform string, msg *shared.Message)

// Options configure a Supervisor.
type Options struct {
	// Logger is the host's logger; platforms log under "supervisor.NAME".
	Logger hclog.Logger
	// PluginLogger receives the plugins' own log lines, as "plugin.NAME".
	PluginLogger hclog.Logger
	// Handler receives inbound messages.
	Handler Handler
	// OnStateChange, if set, is called after a platform changes state.
	OnStateChange func(Status)
	// LogLevel is the plugins' log level.
	LogLevel string
}

// Supervisor runs a set of platforms.
type Supervisor struct {
	logger       hclog.Logger
	pluginLogger hclog.Logger
	handler      Handler
	onState      func(Status)

	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	platforms map[string]*platform
	order     []string
	level     string
	stopped   bool
	// loops counts the platforms' loops (replaced and removed ones until
	// their plugin is gone) and plugin calls made aside, for Stop.
	loops sync.WaitGroup
}

// New returns a supervisor that runs nothing until Apply.
func New(opts Options) *Supervisor {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.PluginLogger == nil {
		opts.PluginLogger = opts.Logger
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Supervisor{
		logger:       opts.Logger,
		pluginLogger: opts.PluginLogger,
		handler:      opts.Handler,
		onState:      opts.OnStateChange,
		ctx:          ctx,
		cancel:       cancel,
		platforms:    map[string]*platform{},
		level:        opts.LogLevel,
	}
}

// Apply makes the running set match specs: platforms added are started,
// removed ones stopped, changed ones (a different Fingerprint) restarted
// alone, and unchanged ones left untouched. It returns the names it started
// or restarted at once: the platforms' loops do the work, so Apply never
// waits on a plugin (a changed platform's new plugin starts once the old
// one is gone, as it may bind the same port).
func (s *Supervisor) Apply(specs []Spec) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	var started []string
	next := make(map[string]*platform, len(specs))
	order := make([]string, 0, len(specs))
	for _, spec := range specs {
		order = append(order, spec.Name)
		old, ok := s.platforms[spec.Name]
		if ok && old.spec.Fingerprint == spec.Fingerprint && old.spec.Path == spec.Path {
			next[spec.Name] = old
			continue
		}
		if ok {
			old.stop()
		}
		next[spec.Name] = s.newPlatformLocked(spec, old)
		started = append(started, spec.Name)
	}
	for name, old := range s.platforms {
		if _, ok := next[name]; !ok {
			old.stop()
		}
	}
	s.platforms = next
	s.order = order
	return started
}

// Restart stops a platform's plugin and starts it again with its current
// spec, for a binary replaced in place. It does not wait: the platform's
// loop does it. It is a no-op for an unknown name.
func (s *Supervisor) Restart(name string) {
	s.mu.Lock()
	p := s.platforms[name]
	s.mu.Unlock()
	if p != nil {
		p.requestRestart()
	}
}

// Poke tells a platform waiting for its binary to look again now.
func (s *Supervisor) Poke(name string) {
	s.mu.Lock()
	p := s.platforms[name]
	s.mu.Unlock()
	if p != nil {
		select {
		case p.poke <- struct{}{}:
		default:
		}
	}
}

// Statuses returns a snapshot of every platform, in config order.
func (s *Supervisor) Statuses() []Status {
	s.mu.Lock()
	ps := make([]*platform, 0, len(s.order))
	for _, name := range s.order {
		ps = append(ps, s.platforms[name])
	}
	s.mu.Unlock()
	out := make([]Status, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.snapshot())
	}
	return out
}

// Specs returns the specs of the platforms being run, in config order.
func (s *Supervisor) Specs() []Spec {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Spec, 0, len(s.order))
	for _, name := range s.order {
		out = append(out, s.platforms[name].spec)
	}
	return out
}

func (s *Supervisor) lookup(name string) (*shared.GRPCClient, error) {
	s.mu.Lock()
	p := s.platforms[name]
	s.mu.Unlock()
	if p == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownPlatform, name)
	}
	c := p.conn()
	if c == nil {
		return nil, fmt.Errorf("%s: %w", name, ErrNotConnected)
	}
	return c, nil
}

// Send delivers a reply through the named platform's plugin.
func (s *Supervisor) Send(ctx context.Context, name string, r shared.Reply) ([]string, error) {
	c, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	return c.Send(ctx, r)
}

// Typing shows a typing indicator through the named platform's plugin.
func (s *Supervisor) Typing(ctx context.Context, name string, conv shared.Conversation) error {
	c, err := s.lookup(name)
	if err != nil {
		return err
	}
	return c.Typing(ctx, conv)
}

// setLevelTimeout bounds the SetLogLevel call into each plugin.
const setLevelTimeout = 2 * time.Second

// SetLogLevel changes the plugins' log level, running ones included. The
// calls into the plugins are made at once, each with a deadline, and
// SetLogLevel returns when they are done or after setLevelTimeout: a frozen
// plugin delays a reload by that much at most.
func (s *Supervisor) SetLogLevel(level string) {
	s.mu.Lock()
	s.level = level
	if s.stopped {
		s.mu.Unlock()
		return
	}
	var calls sync.WaitGroup
	for _, p := range s.platforms {
		c := p.conn()
		if c == nil {
			continue
		}
		s.loops.Add(1)
		calls.Add(1)
		go func() {
			defer s.loops.Done()
			defer calls.Done()
			ctx, cancel := context.WithTimeout(s.ctx, setLevelTimeout)
			defer cancel()
			if err := c.SetLogLevel(ctx, level); err != nil && s.ctx.Err() == nil {
				p.logger.Warn("could not change the plugin's log level", "error", err)
			}
		}()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { calls.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(setLevelTimeout):
	}
}

func (s *Supervisor) logLevel() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.level
}

func (s *Supervisor) deliver(name string, m *shared.Message) {
	if s.handler != nil {
		s.handler(name, m)
	}
}

func (s *Supervisor) stateChanged(st Status) {
	if s.onState != nil {
		s.onState(st)
	}
}

// Stop stops every platform, each with its Stop call before it is killed,
// and waits for their processes to be gone. It is bounded: a plugin gets
// stopGrace for Stop, then is killed (SIGKILL after killWait at most).
func (s *Supervisor) Stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.cancel()
	s.loops.Wait()
}
