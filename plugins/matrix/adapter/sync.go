package adapter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// firstSyncFilter keeps the very first /sync small: it only learns where
// "now" is. Messages from before the bot first started are history, not
// questions, and are never answered.
const firstSyncFilter = `{"room":{"timeline":{"limit":1},"state":{"lazy_load_members":true}},"presence":{"types":[]},"account_data":{"types":[]}}`

// syncFilter asks for what the adapter reads and nothing else, with room
// for many messages per room (homeservers default to about ten): after a
// restart, one /sync brings everything sent meanwhile.
const syncFilter = `{"presence":{"types":[]},"account_data":{"types":[]},"room":{"timeline":{"limit":` +
	maxTimelineEvents + `},"account_data":{"types":[]},"ephemeral":{"types":[]}}}`

// maxTimelineEvents is the timeline limit per room of a /sync.
const maxTimelineEvents = "100"

// Run checks the token (whoami), then follows /sync until ctx is cancelled,
// Stop is called, or something fatal happens. Transient failures (network,
// 5xx, rate limits) are reported as Degraded and retried after a capped,
// jittered backoff; a rejected token ends Run with a *shared.FatalError.
func (a *Adapter) Run(ctx context.Context, events chan<- shared.Event) error {
	if _, _, err := a.configured(); err != nil {
		return errors.New("matrix plugin: Run called before Configure")
	}
	return a.runner.Run(ctx, a.log, func(ctx context.Context) error { return a.loop(ctx, events) })
}

// loop logs in (whoami) and follows /sync. It returns a *shared.FatalError,
// or ctx's error once Run is ending.
func (a *Adapter) loop(ctx context.Context, events chan<- shared.Event) error {
	_, client, err := a.configured()
	if err != nil {
		return err
	}
	a.mu.Lock()
	since := a.cursor
	a.mu.Unlock()
	retries := kit.Retry{Backoff: kit.Backoff{Initial: a.tune.backoffBase, Max: a.tune.backoffMax}}
	loggedIn, connected := false, false
	// retry reports a transient failure and waits before the next try; it
	// returns false when Run is ending.
	retry := func(what string, err error) bool {
		wait, limited := rateLimited(err)
		if !limited {
			wait = retries.Failed(0)
		}
		reason := fmt.Sprintf("%s: %v", what, err)
		if limited {
			reason = fmt.Sprintf("rate limited by the homeserver for %s (%s)", wait.Round(time.Millisecond), what)
		}
		a.log.Warn("Matrix homeserver unreachable; retrying", "error", reason, "retry_in", wait)
		connected = false
		if !emit(ctx, events, shared.Event{Health: &shared.Health{State: shared.Degraded, Message: reason}}) {
			return false
		}
		return kit.Sleep(ctx, wait) == nil
	}
	for ctx.Err() == nil {
		if !loggedIn {
			if err := a.login(ctx, client); err != nil {
				if fe := kit.AsFatal(err); fe != nil {
					return fe
				}
				if ctx.Err() != nil || !retry("whoami", err) {
					return ctx.Err()
				}
				continue
			}
			loggedIn = true
		}
		first := since == ""
		timeout, filter := int(a.tune.pollTimeout/time.Millisecond), syncFilter
		if first || !connected {
			timeout = 0 // answer at once: this sync tells whether we receive
		}
		if first {
			filter = firstSyncFilter
		}
		resp, err := client.SyncRequest(ctx, timeout, since, filter, false, event.PresenceOffline)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if fe := rejectedToken("/sync", err); fe != nil {
				return fe
			}
			if !retry("/sync", err) {
				return ctx.Err()
			}
			continue
		}
		retries.Reset()
		if !connected {
			connected = true
			if !emit(ctx, events, shared.Event{Health: &shared.Health{State: shared.Connected,
				Message: "syncing as " + string(client.UserID)}}) {
				return ctx.Err()
			}
		}
		if err := a.handleSync(ctx, events, resp, since, first); err != nil {
			if fe := kit.AsFatal(err); fe != nil {
				return fe
			}
			return ctx.Err()
		}
		since = resp.NextBatch
	}
	return ctx.Err()
}

// login asks whoami who the token belongs to, and the bot's display name
// for mention detection.
func (a *Adapter) login(ctx context.Context, client *mautrix.Client) error {
	who, err := client.Whoami(ctx)
	if err != nil {
		if fe := rejectedToken("whoami", err); fe != nil {
			return fe
		}
		return fmt.Errorf("checking the access token (whoami): %w", err)
	}
	client.UserID = who.UserID
	name := ""
	if dn, err := client.GetOwnDisplayName(ctx); err == nil {
		name = dn.DisplayName
	} else if fe := rejectedToken("displayname", err); fe != nil {
		return fe
	}
	a.setBot(who.UserID, name)
	a.log.Info("logged in to Matrix", "user_id", who.UserID, "display_name", name)
	return nil
}

// emit sends ev unless ctx ends first.
func emit(ctx context.Context, events chan<- shared.Event, ev shared.Event) bool {
	select {
	case events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
