package kit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/shared"
)

// ErrStopped is the cause Run's context gets when Stop is called.
var ErrStopped = errors.New("the plugin was stopped")

// Runner is the Run and Stop lifecycle every platform plugin shares, so a
// plugin's Run is only its receive loop: one Run at a time; Stop ends it
// (and a Run that starts after Stop ends at once) and waits for it, boundedly;
// Fail ends it with a fatal error found elsewhere (a Send that saw the token
// revoked). The zero value is ready; it is safe for concurrent use.
type Runner struct {
	// Name names the plugin in errors ("discord plugin").
	Name string

	mu      sync.Mutex
	running bool
	stopped bool
	cancel  context.CancelCauseFunc
	done    chan struct{}
}

// Run runs loop with a context that ctx, Stop and Fail end, and says how
// it ended: a *shared.FatalError (returned by loop, or given to Fail) is
// logged once and returned; an end because ctx ended or Stop was called
// returns nil; any other error is returned as it is (transient: the host
// restarts the plugin).
func (r *Runner) Run(ctx context.Context, log hclog.Logger, loop func(context.Context) error) error {
	ctx, err := r.start(ctx)
	if err != nil {
		return err
	}
	defer r.end()
	err = loop(ctx)
	fatal := AsFatal(err)
	if fatal == nil {
		fatal = AsFatal(context.Cause(ctx))
	}
	if fatal != nil {
		if log != nil {
			log.Error("giving up: "+fatal.Message, "code", fatal.Code, "hint", fatal.Hint)
		}
		return fatal
	}
	if ctx.Err() != nil {
		if log != nil {
			log.Info("stopping", "cause", context.Cause(ctx))
		}
		return nil
	}
	return err
}

func (r *Runner) start(parent context.Context) (context.Context, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return nil, fmt.Errorf("%s: Run is already running", r.name())
	}
	ctx, cancel := context.WithCancelCause(parent)
	if r.stopped {
		cancel(ErrStopped)
	}
	r.running, r.cancel, r.done = true, cancel, make(chan struct{})
	return ctx, nil
}

func (r *Runner) end() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cancel(ErrStopped)
	close(r.done)
	r.running, r.cancel = false, nil
}

// Running reports whether Run is running.
func (r *Runner) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running
}

// Stop ends Run, and any Run started later, and waits up to wait (or until
// ctx ends) for it to return.
func (r *Runner) Stop(ctx context.Context, wait time.Duration) error {
	r.mu.Lock()
	r.stopped = true
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel(ErrStopped)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopping the %s: %w", r.name(), ctx.Err())
	case <-t.C:
		return fmt.Errorf("stopping the %s: Run did not return within %s", r.name(), wait)
	}
}

// Fail ends Run with fe and returns fe, for the caller to return too.
func (r *Runner) Fail(fe *shared.FatalError) *shared.FatalError {
	r.mu.Lock()
	cancel := r.cancel
	r.mu.Unlock()
	if cancel != nil {
		cancel(fe)
	}
	return fe
}

func (r *Runner) name() string {
	if r.Name == "" {
		return "plugin"
	}
	return r.Name
}
