package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"syscall"
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
	// Shard and ShardCount are handed to the plugin in Configure: it runs
	// shard Shard of ShardCount (0 of 0: unsharded).
	Shard, ShardCount int
	// BeforeStart, if set, runs before each start of the plugin and may
	// wait (a shard waits for its identify slot); an error other than ctx's
	// is logged and the plugin starts anyway.
	BeforeStart func(ctx context.Context) error
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
	// LivenessInterval, LivenessTimeout and LivenessFailures: the plugin is
	// pinged every interval, each ping bounded by timeout; a missed one
	// makes it degraded, failures in a row get it killed and restarted.
	// Zero means the Default* value.
	LivenessInterval time.Duration
	LivenessTimeout  time.Duration
	LivenessFailures int
}

// stableRun is how long a plugin must stay up for its backoff to start over.
const stableRun = 10 * time.Second

// missingPoll is how often a missing plugin binary is looked for again.
const missingPoll = 500 * time.Millisecond

// stopGrace is how long a plugin's Stop call may take before it is killed.
const stopGrace = 2 * time.Second

// Liveness defaults, for a Spec whose Restart leaves them zero: a frozen
// plugin is degraded after at most interval+timeout (10 s) and killed after
// failures missed pings (at most 20 s, then killWait before SIGKILL).
const (
	DefaultLivenessInterval = 5 * time.Second
	DefaultLivenessTimeout  = 5 * time.Second
	DefaultLivenessFailures = 3
)

// errRestartRequested ends a plugin run that Restart asked to start over.
var errRestartRequested = errors.New("restart requested")

// LivenessError says a plugin stopped answering its liveness pings.
type LivenessError struct {
	Missed int
	Last   error
}

func (e *LivenessError) Error() string {
	return fmt.Sprintf("plugin did not answer %d liveness pings in a row (last: %v); killed", e.Missed, e.Last)
}

func (e *LivenessError) Unwrap() error { return e.Last }

// platform runs one platform's plugin. Its loop goroutine is the only
// writer of its status: every state transition happens there, so what
// /v1/status shows is always a state the loop was in. Others talk to the
// loop through ctx (stop), restart and poke.
type platform struct {
	spec   Spec // fixed for the platform's life: a new spec is a new platform
	logger hclog.Logger
	sup    *Supervisor

	ctx     context.Context
	cancel  context.CancelFunc
	after   <-chan struct{} // the predecessor's done: its plugin must be gone first
	done    chan struct{}
	poke    chan struct{}
	restart chan struct{}

	mu     sync.Mutex
	status Status
	proc   *process // nil unless a plugin process is up
	binary binaryID // the binary last started, for spotting a replaced one
}

// newPlatform makes the platform that runs spec and starts its loop. A
// platform that replaces prev starts its plugin once prev's is gone (a
// changed platform may bind the same port) and keeps its restart count.
// The caller holds s.mu.
func (s *Supervisor) newPlatformLocked(spec Spec, prev *platform) *platform {
	ctx, cancel := context.WithCancel(s.ctx)
	state := StateStarting
	if !spec.Enabled {
		state = StateDisabled
	}
	p := &platform{
		spec:    spec,
		sup:     s,
		logger:  s.logger.Named(spec.Name),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		poke:    make(chan struct{}, 1),
		restart: make(chan struct{}, 1),
		status:  Status{Name: spec.Name, Plugin: spec.Plugin, State: state, Since: time.Now(), Path: spec.Path},
	}
	if prev != nil {
		p.after = prev.done
		p.status.Restarts = prev.snapshot().Restarts
	}
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		p.loop()
	}()
	return p
}

// stop asks the loop to stop the plugin; done closes once it is gone.
func (p *platform) stop() { p.cancel() }

// requestRestart asks the loop to stop the plugin and start it again now.
func (p *platform) requestRestart() {
	select {
	case p.restart <- struct{}{}:
	default:
	}
}

func (p *platform) snapshot() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// setState moves the platform to state; edits, if any, change the status
// in the same critical section, so no snapshot sees half a change. Only
// the loop calls it.
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
		if !LegalTransition(prev, state) {
			p.logger.Error("illegal state transition (a bug)", "from", prev, "to", state)
		}
		p.sup.stateChanged(st)
	}
}

// clearProcess is a setState edit: the plugin process is gone.
func (p *platform) clearProcess(st *Status) {
	p.proc = nil
	st.PID = 0
}

// countRestart is a setState edit: one more restart.
func countRestart(st *Status) { st.Restarts++ }

func (p *platform) setProcess(proc *process) {
	p.mu.Lock()
	p.proc = proc
	p.status.PID = proc.pid
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
// backoff, and parks it after a fatal error or a tripped breaker. It is
// the only writer of the platform's state.
func (p *platform) loop() {
	defer close(p.done)
	ctx := p.ctx
	if p.after != nil {
		select {
		case <-p.after:
		case <-ctx.Done():
			p.setState(StateStopped, nil)
			return
		}
	}
	if !p.spec.Enabled {
		<-ctx.Done()
		p.setState(StateStopped, nil)
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
		if p.spec.BeforeStart != nil {
			if err := p.spec.BeforeStart(ctx); ctx.Err() != nil {
				p.setState(StateStopped, nil)
				return
			} else if err != nil {
				p.logger.Warn("starting the plugin without waiting its turn", "error", err)
			}
		}
		upSince, err := p.runOnce(ctx)
		if ctx.Err() != nil {
			p.setState(StateStopped, nil, p.clearProcess)
			return
		}
		if errors.Is(err, errRestartRequested) {
			p.setState(StateStarting, nil, p.clearProcess)
			continue
		}
		var fatal *shared.FatalError
		if errors.As(err, &fatal) {
			p.logger.Error("platform failed for good; it will not be restarted until its config changes",
				"error", fatal.Message, "hint", fatal.Hint, "code", fatal.Code)
			p.setState(StateFailed, err, p.clearProcess)
			if !p.parkFailed(ctx, err) {
				return
			}
			br.reset()
			retry.Reset()
			continue
		}
		now := time.Now()
		var up time.Duration
		if !upSince.IsZero() {
			up = now.Sub(upSince)
		}
		delay := retry.Failed(up)
		// A start that failed because the host itself ran out of file
		// descriptors or memory says nothing about the plugin: it backs
		// off and retries, and never trips the breaker for good.
		if hostExhausted(err) {
			p.logger.Error("the host is out of resources to start the plugin; retrying after backoff", "error", err)
		} else if br.fail(now) {
			err = fmt.Errorf("crash loop: %d failures within %s, last: %w", br.limit, br.window, err)
			p.logger.Error("platform failed; not restarting until the config changes", "error", err)
			p.setState(StateFailed, err, p.clearProcess)
			if !p.parkFailed(ctx, err) {
				return
			}
			br.reset()
			retry.Reset()
			continue
		}
		p.logger.Warn("plugin stopped; restarting after backoff", "error", err, "backoff", delay.Round(time.Millisecond), "attempt", retry.Failures())
		p.setState(StateBackoff, err, p.clearProcess, countRestart)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			p.setState(StateStopped, nil)
			return
		case <-p.restart:
		case <-t.C:
		}
		t.Stop()
	}
}

// parkFailed keeps a failed platform parked until its config changes (a new
// platform replaces it) or its binary is replaced (a restart request): then
// it reports true and the loop starts it again. It reports false once ctx
// ends.
func (p *platform) parkFailed(ctx context.Context, err error) bool {
	select {
	case <-ctx.Done():
		p.setState(StateStopped, err)
		return false
	case <-p.restart:
		p.logger.Info("plugin binary replaced; starting the failed platform again")
		p.setState(StateStarting, nil)
		return true
	}
}

// hostExhausted reports whether err comes from the host running out of a
// resource (descriptors, memory, processes) rather than from the plugin.
func hostExhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.EAGAIN)
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
// plugin's event stream ends, it misses its liveness pings, a restart is
// requested or ctx ends, with the time the plugin reported connected (zero
// if never) and why it ended. The process is gone when it returns; the
// caller clears it from the status with the next state.
func (p *platform) runOnce(ctx context.Context) (time.Time, error) {
	if st := p.snapshot().State; st != StateStarting {
		p.setState(StateStarting, nil)
	}
	id, err := statID(p.spec.Path)
	if err != nil {
		return time.Time{}, err
	}
	p.mu.Lock()
	p.binary = id
	p.mu.Unlock()
	proc, err := startProcess(startOptions{
		binary:       Binary{Path: p.spec.Path, Dir: p.spec.Dir, SHA256: p.spec.SHA256},
		logLevel:     p.sup.logLevel(),
		startTimeout: p.spec.StartTimeout,
		logger:       p.sup.pluginLogger.Named(p.spec.Name),
	})
	if isInsecure(err) {
		return time.Time{}, &shared.FatalError{Code: "insecure_plugin", Message: err.Error(),
			Hint: "make the binary and plugin_dir writable only by their owner (root or the gateway's user), inside plugin_dir"}
	}
	if errors.Is(err, ErrChecksum) {
		return time.Time{}, &shared.FatalError{Code: "checksum_mismatch", Message: err.Error(),
			Hint: "install the binary the config names, or update the platform's sha256"}
	}
	if err != nil {
		return time.Time{}, err
	}
	p.setProcess(proc)
	grace := stopGrace
	defer func() { proc.stop(grace) }()

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
	p.sup.loadReplay(p)
	callCtx, cancelCall = context.WithTimeout(ctx, 30*time.Second)
	err = proc.conn.ConfigureWithLevel(callCtx, shared.Config{Raw: raw, Cursor: cursor, Shard: p.spec.Shard, ShardCount: p.spec.ShardCount}, p.sup.logLevel())
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
	events := make(chan shared.Event, 64)
	runErr := make(chan error, 1)
	go func() { runErr <- proc.conn.Run(runCtx, events) }()
	pings := make(chan error)
	pingerDone := make(chan struct{})
	go func() {
		defer close(pingerDone)
		p.pinger(runCtx, proc, pings)
	}()
	// Deferred after proc.stop, so it runs first: the host ends the event
	// stream (which returns at once, answered or not) and the pinger, then
	// the process is stopped.
	defer func() {
		cancelRun()
		<-pingerDone
		select {
		case <-runErr:
		case <-time.After(stopGrace):
		}
	}()

	var upSince time.Time
	health, healthErr := StateStarting, error(nil) // what the plugin last reported
	missed := 0
	handle := func(ev shared.Event) {
		switch {
		case ev.Message != nil:
			p.sup.take(p, ev)
		case ev.Transcript != nil:
			p.sup.transcript(p, ev.Transcript)
		case ev.Health != nil:
			switch ev.Health.State {
			case shared.Connected:
				if upSince.IsZero() {
					upSince = time.Now()
				}
				p.logger.Info("platform running", "pid", proc.pid)
				health, healthErr = StateRunning, nil
				p.sup.replay(p)
			case shared.Degraded:
				p.logger.Warn("platform degraded", "reason", ev.Health.Message)
				health, healthErr = StateDegraded, errors.New(ev.Health.Message)
			default:
				return
			}
			if missed == 0 {
				p.setState(health, healthErr)
			}
		}
	}
	for {
		select {
		case ev := <-events:
			handle(ev)
		case err := <-runErr:
			runErr <- err // for the deferred wait
			for len(events) > 0 {
				handle(<-events)
			}
			if err == nil {
				err = errors.New("plugin ended its event stream")
			}
			return upSince, err
		case err := <-pings:
			if err == nil {
				if missed > 0 {
					p.logger.Info("plugin answers its liveness pings again", "missed", missed)
					missed = 0
					p.setState(health, healthErr)
				}
				continue
			}
			missed++
			if missed >= p.livenessFailures() {
				lerr := &LivenessError{Missed: missed, Last: err}
				p.logger.Error("plugin is not responding; killing it", "missed", missed, "error", err, "pid", proc.pid)
				grace = 0 // it answers nothing: no Stop call, straight to the kill
				return upSince, lerr
			}
			if missed == 1 {
				p.logger.Warn("plugin missed a liveness ping", "error", err, "pid", proc.pid)
				p.setState(StateDegraded, fmt.Errorf("plugin is not answering its liveness pings: %w", err))
			}
		case <-p.restart:
			return upSince, errRestartRequested
		case <-ctx.Done():
			return upSince, ctx.Err()
		}
	}
}

func (p *platform) livenessFailures() int {
	if n := p.spec.Restart.LivenessFailures; n > 0 {
		return n
	}
	return DefaultLivenessFailures
}

// pinger pings the plugin every liveness interval, each ping bounded by
// the liveness timeout, and hands each result to out until ctx ends.
func (p *platform) pinger(ctx context.Context, proc *process, out chan<- error) {
	every, timeout := p.spec.Restart.LivenessInterval, p.spec.Restart.LivenessTimeout
	if every <= 0 {
		every = DefaultLivenessInterval
	}
	if timeout <= 0 {
		timeout = DefaultLivenessTimeout
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := proc.ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		select {
		case out <- err:
		case <-ctx.Done():
			return
		}
	}
}
