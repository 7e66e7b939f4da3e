package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// Run checks the token, then keeps a gateway connection up until ctx is
// cancelled, Stop is called, or something fatal happens. It owns the
// reconnect loop: transient failures reconnect (resuming the session where
// Discord allows) after a capped, jittered backoff and are reported as
// Degraded; fatal ones end Run with a *shared.FatalError.
func (a *Adapter) Run(ctx context.Context, events chan<- shared.Event) error {
	if _, _, _, err := a.configured(); err != nil {
		return errors.New("discord plugin: Run called before Configure")
	}
	return a.runner.Run(ctx, a.log, func(ctx context.Context) error {
		emit := func(ev shared.Event) bool {
			select {
			case events <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		return a.loop(ctx, emit)
	})
}

// loop is the reconnect loop. It returns a *shared.FatalError, or
// ctx's error once Run is ending.
func (a *Adapter) loop(ctx context.Context, emit emitFunc) error {
	rs := &resumeState{}
	a.mu.Lock()
	from, resume := a.resumeFrom, a.resumeFrom.SessionID != ""
	a.resumeFrom = cursor{} // once: a later Run starts afresh
	a.mu.Unlock()
	if resume {
		// The host's cursor: resume the session it names (this plugin's
		// before a restart, or the previous host's), so that what was
		// dispatched meanwhile is replayed.
		rs.sessionID, rs.resumeURL = from.SessionID, from.ResumeURL
		rs.seq.Store(from.Seq)
		a.log.Info("resuming the gateway session the host kept", "seq", from.Seq)
	}
	dialURL := ""
	retry := kit.Retry{Backoff: kit.Backoff{Initial: a.tune.backoffBase, Max: a.tune.backoffMax}}
	var lastOp7 time.Time // when the gateway last asked to reconnect
	asked := false        // the last connection ended with op 7
	for ctx.Err() == nil {
		var err error
		if !rs.canResume() && asked {
			// Discord asked for this identify: a gateway that keeps
			// asking is paced by identify_budget, never fatal.
			if !a.waitIdentifyBudget(ctx, emit) {
				return ctx.Err()
			}
		}
		if !rs.canResume() {
			// Check the token before every fresh IDENTIFY: a rejected token
			// then costs a REST call, not an identify (Discord resets tokens
			// that identify too often).
			err = a.checkToken(ctx)
			if err == nil && dialURL == "" {
				dialURL, err = a.gatewayURL(ctx)
			}
			if err != nil && isUnauthorized(err) {
				return tokenRejected("REST 401")
			}
		} else if a.botID() == "" {
			// Resuming the host's session: RESUMED does not say who the
			// bot is (READY did, to the plugin that identified), and
			// mentions are recognised by its id.
			err = a.checkToken(ctx)
			if err == nil && rs.resumeURL == "" && dialURL == "" {
				dialURL, err = a.gatewayURL(ctx)
			}
			if err != nil && isUnauthorized(err) {
				return tokenRejected("REST 401")
			}
		}
		ready, up := false, time.Duration(0)
		if err == nil {
			target := dialURL
			if rs.canResume() && rs.resumeURL != "" {
				target, err = withGatewayParams(rs.resumeURL, a.cfg.gatewayVersion())
			}
			if err == nil {
				start := time.Now()
				ready, err = a.connect(ctx, rs, target, emit)
				up = time.Since(start)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			err = errors.New("connection ended")
		}
		reason := err.Error()
		wait, fatal := a.classify(err, rs)
		if fatal != nil {
			return fatal
		}
		if !ready {
			dialURL = "" // ask where the gateway is again
		}
		if ready && up >= a.tune.stableAfter {
			retry.Reset()
		}
		asked = errors.Is(err, errReconnectRequested)
		if asked {
			// Discord's docs: reconnect (and resume) at once after op 7.
			// Op 7s that follow within stableAfter are a storm: they back
			// off like any other reconnect.
			now := time.Now()
			if !lastOp7.IsZero() && now.Sub(lastOp7) < a.tune.stableAfter {
				wait = -1
			}
			lastOp7 = now
		}
		if wait < 0 {
			wait = retry.Failed(up)
		}
		a.log.Warn("Discord gateway connection lost; reconnecting", "error", reason, "retry_in", wait,
			"resume", rs.canResume())
		if !emit(shared.Event{Health: &shared.Health{State: shared.Degraded, Message: "reconnecting to Discord: " + reason}}) {
			return ctx.Err()
		}
		if err := kit.Sleep(ctx, wait); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// waitIdentifyBudget waits, when identify_budget is spent, until the
// window has room for one more identify; false means ctx ended.
func (a *Adapter) waitIdentifyBudget(ctx context.Context, emit emitFunc) bool {
	wait := a.budget.wait(time.Now())
	if wait <= 0 {
		return true
	}
	msg := fmt.Sprintf("Discord keeps asking the bot to reconnect (op 7) before it is ready; identify_budget is spent: next identify in %s",
		wait.Round(time.Second))
	a.log.Warn(msg, "identify_budget", a.cfg.identifyBudget)
	if !emit(shared.Event{Health: &shared.Health{State: shared.Degraded, Message: msg}}) {
		return false
	}
	return kit.Sleep(ctx, wait) == nil
}

// checkToken asks users/@me, which fails with 401 for a bad token, and
// learns the bot's own id for mention gating.
func (a *Adapter) checkToken(ctx context.Context) error {
	raw, err := a.restRequest(ctx, a.rest, http.MethodGet, discordgo.EndpointUser("@me"), nil)
	var me discordgo.User
	if err == nil {
		err = json.Unmarshal(raw, &me)
	}
	if err != nil {
		return fmt.Errorf("checking the bot token (users/@me): %w", err)
	}
	a.setBot(&me)
	return nil
}

// classify decides what a connection's end means: a fatal error to return,
// or how long to wait before reconnecting (negative: use the backoff). It
// also forgets the session when it cannot be resumed.
func (a *Adapter) classify(err error, rs *resumeState) (time.Duration, *shared.FatalError) {
	var fatal *shared.FatalError
	if errors.As(err, &fatal) {
		return 0, fatal
	}
	if code, ok := closeCode(err); ok {
		if fe := fatalCloseCode(code); fe != nil {
			return 0, fe
		}
		switch code {
		case 4007, 4009: // invalid seq, session timed out
			rs.reset()
		}
		return -1, nil
	}
	var invalid *invalidSessionError
	if errors.As(err, &invalid) {
		if !invalid.Resumable {
			rs.reset()
		}
		return a.tune.invalidSessionWait(), nil
	}
	if errors.Is(err, errReconnectRequested) {
		return 0, nil // Discord asked: reconnect and resume at once
	}
	return -1, nil
}
