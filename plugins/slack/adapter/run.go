package adapter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// Run checks the bot token, then keeps one Socket Mode connection up until
// ctx is cancelled, Stop is called, or something fatal happens. It owns the
// reconnect loop: a dropped or refreshed connection is replaced after a
// capped, jittered backoff (at once when Slack asked) and reported as
// Degraded meanwhile; a rejected token ends Run with a *shared.FatalError
// after exactly the request that was refused.
func (a *Adapter) Run(ctx context.Context, events chan<- shared.Event) error {
	a.mu.Lock()
	dead, configured := a.dead, a.api != nil
	a.mu.Unlock()
	switch {
	case dead != nil:
		return dead
	case !configured:
		return errors.New("slack plugin: Run called before Configure")
	}
	return a.runner.Run(ctx, a.log, func(ctx context.Context) error {
		err := a.loop(ctx, events)
		if fe := kit.AsFatal(err); fe != nil {
			return a.fail(fe) // no request after this one; the first fatal error wins
		}
		return err
	})
}

// loop is the reconnect loop. It returns a *shared.FatalError, or ctx's
// error once Run is ending. Each pass opens a connection only after the
// previous one is closed: Slack spreads events over every open connection
// of an app, so one left open would take events nobody reads.
func (a *Adapter) loop(ctx context.Context, events chan<- shared.Event) error {
	retry := kit.Retry{Backoff: kit.Backoff{Initial: a.tune.backoffBase, Max: a.tune.backoffMax}, StableAfter: a.tune.stableAfter}
	authed := false
	for ctx.Err() == nil {
		var err error
		up := time.Duration(0)
		if !authed {
			err = a.checkBotToken(ctx)
			authed = err == nil
		}
		if authed {
			var url string
			url, err = a.openConnection(ctx)
			if err == nil {
				start := time.Now()
				err = a.connect(ctx, url, events)
				up = time.Since(start)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var fatal *shared.FatalError
		if errors.As(err, &fatal) {
			return fatal
		}
		if err == nil {
			err = errors.New("the Socket Mode connection ended")
		}
		wait := retry.Failed(up)
		switch d, limited := retryAfter(err); {
		case limited:
			wait = max(wait, d)
		case errors.Is(err, errRefresh) && retry.Failures() == 1:
			wait = 0 // Slack asked for a new connection: no reason to wait
		}
		if errors.Is(err, errRefresh) {
			a.log.Info("replacing the Socket Mode connection as Slack asked", "reason", err, "retry_in", wait)
		} else {
			a.log.Warn("Slack Socket Mode connection lost; reconnecting", "error", err, "retry_in", wait)
		}
		if !emit(ctx, events, shared.Event{Health: &shared.Health{State: shared.Degraded,
			Message: "reconnecting to Slack: " + err.Error()}}) {
			return ctx.Err()
		}
		if err := kit.Sleep(ctx, wait); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// checkBotToken calls auth.test with the bot token, which learns the bot's
// own user id (for mentions and to never answer itself).
func (a *Adapter) checkBotToken(ctx context.Context) error {
	_, api, err := a.client()
	if err != nil {
		return err
	}
	who, err := api.AuthTestContext(ctx)
	if err != nil {
		if fe := fatalAPIError(err, botToken, "auth.test"); fe != nil {
			return fe
		}
		return fmt.Errorf("checking the bot token (auth.test): %w", err)
	}
	a.setBot(who.UserID, who.BotID)
	a.log.Info("bot token accepted", "team", who.Team, "bot_user_id", who.UserID)
	return nil
}

// openConnection asks apps.connections.open, with the app token, for a
// Socket Mode websocket URL.
func (a *Adapter) openConnection(ctx context.Context) (string, error) {
	_, api, err := a.client()
	if err != nil {
		return "", err
	}
	_, url, err := api.StartSocketModeContext(ctx)
	if err != nil {
		if fe := fatalAPIError(err, appToken, "apps.connections.open"); fe != nil {
			return "", fe
		}
		return "", fmt.Errorf("opening a Socket Mode connection (apps.connections.open): %w", err)
	}
	return url, nil
}

// emit hands ev to Run's channel; false means Run is ending.
func emit(ctx context.Context, events chan<- shared.Event, ev shared.Event) bool {
	select {
	case events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
