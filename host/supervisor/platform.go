package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// Spec is everything the supervisor needs to run one platform.
type Spec struct {
	Name    string
	Plugin  string
	Path    string // the plugin binary
	Dir     string // plugin_dir: the binary must resolve inside it
	Enabled bool
	SHA256  string
	Restart RestartPolicy
	// StartTimeout bounds the plugin's handshake; DefaultStartTimeout if 0.
	StartTimeout time.Duration
	// Decode decodes the platform's config block against the schema its
	// plugin describes. An error makes the platform failed (fatal).
	Decode func(schema []shared.Attribute) (json.RawMessage, error)
	// Fingerprint identifies the spec's effective settings: a platform
	// whose fingerprint is unchanged is left alone by Apply.
	Fingerprint string
}

// RestartPolicy is how a platform's plugin is restarted after transient
// failures: capped, jittered exponential backoff, and a crash-loop breaker
// that marks the platform failed.
type RestartPolicy struct {
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// MaxFailures failures within FailureWindow trip the breaker; zero
	// never trips it.
	MaxFailures   int
	FailureWindow time.Duration
}

// stableRun is how long a plugin must stay up for its backoff to start over.
const stableRun = 10 * time.Second

// missingPoll is how often a missing plugin binary is looked for again.
const missingPoll = 500 * time.Millisecond

// stopGrace is how long a plugin's Stop call may take before it is killed.
const stopGrace = 1500 * time.Millisecond

// platform runs one platform's plugin for as long as its context lives.
type platform struct {
	spec   Spec
	logger hclog.Logger
	sup    *Supervisor

	cancel context.CancelFunc
	done   chan struct{}
	poke   chan struct{}

	mu     sync.Mutex
	status Status
	proc   *process // nil unless a plugin process is up
	binary binaryID // the binary last started, for spotting a replaced one
}

func newPlatform(sup *Supervisor, spec Spec) *platform {
	p := &platform{
		spec:   spec,
		sup:    sup,
		logger: sup.logger.Named(spec.Name),
		done:   make(chan struct{}),
		poke:   make(chan struct{}, 1),
		status: Status{Name: spec.Name, Plugin: spec.Plugin, State: StateStarting, Since: time.Now(), Path: spec.Path},
	}
	return p
}

func (p *platform) start(ctx context.Context) {
	ctx, p.cancel = context.WithCancel(ctx)
	go p.loop(ctx)
}

// stopAndWait stops the platform and waits for its plugin to be gone.
func (p *platform) stopAndWait() {
	p.cancel()
	<-p.done
}

func (p *platform) snapshot() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// setState moves the platform to state; edits, if any, change the status
// in the same critical section, so no snapshot sees half a change.
func (p *platform) setState(state State, err error, edits ...func(*Status)) {
	p.mu.Lock()
	for _, edit := range edits {
		edit(&p.status)
	}
	prev := p.status.State
	p.status.State = state
	p.status.Since = time.Now()
	p.status.Fatal = false
	p.status.Hint = ""
	p.status.Error = ""
	if err != nil {
		p.status.Error = err.Error()
		var fatal *shared.FatalError
		if errors.As(err, &fatal) {
			p.status.Fatal = true
			p.status.Error = fatal.Message
			p.status.Hint = fatal.Hint
		}
	}
	st := p.status
	p.mu.Unlock()
	if prev != state {
		p.sup.stateChanged(st)
	}
}

func (p *platform) setProcess(proc *process) {
	p.mu.Lock()
	p.proc = proc
	p.status.PID = 0
	if proc != nil {
		p.status.PID = proc.pid
	}
	p.mu.Unlock()
}

func (p *platform) conn() shared.PluginConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return nil
	}
	return p.proc.conn
}

// loop starts the plugin, restarts it after transient failures with
// backoff, and parks it after a fatal error or a tripped breaker.
func (p *platform) loop(ctx context.Context) {
	defer close(p.done)
	if !p.spec.Enabled {
		p.setState(StateDisabled, nil)
		<-ctx.Done()
		return
	}
	retry := kit.Retry{
		Backoff:     kit.Backoff{Initial: p.spec.Restart.InitialBackoff, Max: p.spec.Restart.MaxBackoff},
		StableAfter: stableRun,
	}
	br := breaker{limit: p.spec.Restart.MaxFailures, window: p.spec.Restart.FailureWindow}
	for {
		if !p.waitForBinary(ctx) {
			p.setState(StateStopped, nil)
			return
		}
		upSince, err := p.runOnce(ctx)
		if ctx.Err() != nil {
			p.setState(StateStopped, nil)
			return
		}
		var fatal *shared.FatalError
		if errors.As(err, &fatal) {
			p.logger.Error("platform failed for good; it will not be restarted until its config changes",
				"error", fatal.Message, "hint", fatal.Hint, "code", fatal.Code)
			p.setState(StateFailed, err)
			<-ctx.Done()
			return
		}
		now := time.Now()
		var up time.Duration
		if !upSince.IsZero() {
			up = now.Sub(upSince)
		}
		delay := retry.Failed(up)
		if br.fail(now) {
			err = fmt.Errorf("crash loop: %d failures within %s, last: %w", br.limit, br.window, err)
			p.logger.Error("platform failed; not restarting until the config changes", "error", err)
			p.setState(StateFailed, err)
			<-ctx.Done()
			return
		}
		p.logger.Warn("plugin stopped; restarting after backoff", "error", err, "backoff", delay.Round(time.Millisecond), "attempt", retry.Failures())
		p.setState(StateBackoff, err, func(st *Status) { st.Restarts++ })
		select {
		case <-ctx.Done():
			p.setState(StateStopped, nil)
			return
		case <-time.After(delay):
		}
	}
}

// waitForBinary returns once the plugin binary exists and is stable, or
// false when ctx ends. A binary still being written (its size or mtime
// changed within settleTime) is never executed: install binaries with
// `install -m 0755 NEW DIR/gateway-plugin-NAME.tmp && mv ...tmp ...NAME`,
// which makes the change atomic.
func (p *platform) waitForBinary(ctx context.Context) bool {
	var last binaryID
	for {
		id, err := statID(p.spec.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if p.snapshot().State != StateMissing {
				p.logger.Warn("plugin binary not found; waiting for it", "path", p.spec.Path)
				p.setState(StateMissing, fmt.Errorf("plugin binary not found: %s", p.spec.Path))
			}
		case err == nil && (id == last || time.Since(id.mtime) > settleTime):
			return true
		default:
			last = id // changed since the last look: still being written
		}
		t := time.NewTimer(missingPoll)
		if last != (binaryID{}) {
			t.Reset(settleTime)
		}
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-p.poke:
		case <-t.C:
		}
		t.Stop()
	}
}

// settleTime is how long a plugin binary must stay unchanged to be run.
const settleTime = 200 * time.Millisecond

// runOnce runs one plugin process from start to end. It returns when the
// plugin's event stream ends, with the time the plugin reported connected
// (zero if never) and why it ended.
func (p *platform) runOnce(ctx context.Context) (time.Time, error) {
	p.setState(StateStarting, nil)
	id, err := statID(p.spec.Path)
	if err != nil {
		return time.Time{}, err
	}
	p.mu.Lock()
	p.binary = id
	p.mu.Unlock()
	if err := checkBinary(p.spec.Dir, p.spec.Path); err != nil {
		if isInsecure(err) {
			return time.Time{}, &shared.FatalError{Code: "insecure_plugin", Message: err.Error(),
				Hint: "make the binary and plugin_dir writable only by their owner (root or the gateway's user), inside plugin_dir"}
		}
		return time.Time{}, err
	}
	proc, err := startProcess(startOptions{
		path:         p.spec.Path,
		sha256:       p.spec.SHA256,
		logLevel:     p.sup.logLevel(),
		startTimeout: p.spec.StartTimeout,
		logger:       p.sup.pluginLogger.Named(p.spec.Name),
	})
	if errors.Is(err, ErrChecksum) {
		return time.Time{}, &shared.FatalError{Code: "checksum_mismatch", Message: err.Error(),
			Hint: "install the binary the config names, or update the platform's sha256"}
	}
	if err != nil {
		return time.Time{}, err
	}
	defer func() {
		// Leave "running" before the process is cleared, so no status
		// shows a running platform without a plugin; the loop then moves
		// on to backoff, failed or stopped.
		p.setState(StateBackoff, nil)
		p.setProcess(nil)
		proc.stop(stopGrace)
	}()

	callCtx, cancelCall := context.WithTimeout(ctx, 10*time.Second)
	desc, err := proc.conn.Describe(callCtx)
	cancelCall()
	if err != nil {
		return time.Time{}, fmt.Errorf("describe: %w", err)
	}
	raw, err := p.spec.Decode(desc.Schema)
	if err != nil {
		return time.Time{}, &shared.FatalError{Code: "invalid_config", Message: err.Error(),
			Hint: "fix the platform's config block; `gateway validate` shows every problem"}
	}
	cursor, err := p.sup.cursor(p.spec.Name)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the platform's cursor: %w", err)
	}
	callCtx, cancelCall = context.WithTimeout(ctx, 30*time.Second)
	err = proc.conn.ConfigureWithLevel(callCtx, shared.Config{Raw: raw, Cursor: cursor}, p.sup.logLevel())
	cancelCall()
	if err != nil {
		return time.Time{}, fmt.Errorf("configure: %w", err)
	}
	p.logger.Debug("plugin configured", "plugin", desc.Name, "version", desc.Version, "pid", proc.pid,
		"protocol", proc.conn.Protocol(), "streams", proc.conn.Streams())
	if proc.conn.Protocol() < shared.ProtocolVersion {
		p.logger.Warn("plugin speaks an older protocol: no streamed replies, and its messages count as taken once sent; rebuild it against this gateway",
			"protocol", proc.conn.Protocol(), "current", shared.ProtocolVersion)
	}

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	events := make(chan shared.Event, 64)
	runErr := make(chan error, 1)
	go func() { runErr <- proc.conn.Run(runCtx, events) }()
	p.setProcess(proc)

	var upSince time.Time
	handle := func(ev shared.Event) {
		switch {
		case ev.Message != nil:
			p.sup.take(p, ev)
		case ev.Health != nil:
			switch ev.Health.State {
			case shared.Connected:
				if upSince.IsZero() {
					upSince = time.Now()
				}
				p.logger.Info("platform running", "pid", proc.pid)
				p.setState(StateRunning, nil)
				p.sup.replay(p)
			case shared.Degraded:
				p.logger.Warn("platform degraded", "reason", ev.Health.Message)
				p.setState(StateDegraded, errors.New(ev.Health.Message))
			}
		}
	}
	for {
		select {
		case ev := <-events:
			handle(ev)
		case err := <-runErr:
			for len(events) > 0 {
				handle(<-events)
			}
			if err == nil {
				err = errors.New("plugin ended its event stream")
			}
			return upSince, err
		case <-ctx.Done():
			// Graceful: Stop first so the plugin disconnects cleanly,
			// then the deferred stop kills whatever is left.
			stopCtx, cancel := context.WithTimeout(context.Background(), stopGrace)
			_ = proc.conn.Stop(stopCtx)
			cancel()
			cancelRun()
			<-runErr
			return upSince, ctx.Err()
		}
	}
}
