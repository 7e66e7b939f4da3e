package adapter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-telegram/bot/models"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// Run checks the token with getMe, then long-polls getUpdates until ctx is
// cancelled, Stop is called, or Telegram rejects the token. Each message is
// handed to the host with shared.Deliver, and its update is confirmed (the
// next poll's offset) only after the host took it. Transient failures (409,
// 429, 5xx, network) are reported as Degraded and retried with backoff; a
// rejected token ends Run with a *shared.FatalError.
func (a *Adapter) Run(ctx context.Context, events chan<- shared.Event) error {
	a.mu.Lock()
	configured := a.api != nil
	a.mu.Unlock()
	if !configured {
		return errors.New("telegram plugin: Run called before Configure")
	}
	// No logger for the runner: the host logs a fatal error (one line,
	// with the hint), so the plugin only notes it for a plugin author
	// reading debug logs.
	err := a.runner.Run(ctx, nil, func(ctx context.Context) error { return a.poll(ctx, events) })
	switch fe := kit.AsFatal(err); {
	case fe != nil:
		a.log.Debug("giving up", "code", fe.Code)
	case err == nil:
		a.log.Info("stopped polling Telegram")
	}
	return err
}

// poller is one Run's polling state.
type poller struct {
	a      *Adapter
	s      settings
	api    *api
	events chan<- shared.Event
	// offset is the next update to ask for; everything before it is
	// taken by the host (or was not for it) and is confirmed by the next
	// getUpdates.
	offset int64
	// since, when set, is the oldest message date answered: the start
	// had no cursor, so older messages are history.
	since int64
	// checkpoint: the start had no cursor; the offset after the first
	// poll goes to the host, so the next start has one.
	checkpoint bool
	// healthy: the last poll succeeded, and the host was told Connected.
	healthy bool
	reason  string // the last Degraded reason sent
	retry   kit.Retry
}

func (a *Adapter) poll(ctx context.Context, events chan<- shared.Event) error {
	s, client, err := a.client()
	if err != nil {
		return err
	}
	a.mu.Lock()
	cursor, tune := a.cursor, a.tune
	a.mu.Unlock()
	p := &poller{a: a, s: s, api: client, events: events,
		retry: kit.Retry{Backoff: kit.Backoff{Initial: tune.backoffBase, Max: tune.backoffMax}}}
	first := cursor == ""
	if !first {
		p.offset, err = strconv.ParseInt(cursor, 10, 64)
		if err != nil || p.offset < 0 {
			a.log.Warn("ignoring a cursor that is not an update offset", "cursor", cursor)
			p.offset, first = 0, true
		}
	}
	if first {
		// The first start (the host has no cursor): what is older than the
		// grace is history. The first poll's offset is checkpointed, so a
		// restart is never taken for a first start again.
		p.since = time.Now().Add(-tune.historyGrace).Unix()
		p.checkpoint = true
	}
	if err := p.checkToken(ctx); err != nil {
		return err
	}
	for ctx.Err() == nil {
		timeout := s.pollTimeout
		if !p.healthy {
			// Ask without waiting, so a recovery is reported at once.
			timeout = 0
		}
		updates, err := client.getUpdates(ctx, p.offset, timeout)
		if err != nil {
			if err := p.failed(ctx, err); err != nil {
				return err
			}
			continue
		}
		if err := p.receiving(ctx); err != nil {
			return err
		}
		for _, u := range updates {
			if err := p.handle(ctx, u); err != nil {
				return err
			}
		}
		if p.checkpoint {
			if err := shared.Checkpoint(ctx, events, strconv.FormatInt(p.offset, 10)); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("handing the first poll's offset to the host: %w", err)
			}
			p.checkpoint = false
		}
	}
	return ctx.Err()
}

// checkToken calls getMe until it answers: a rejected token is fatal after
// that one request; anything else is retried with backoff.
func (p *poller) checkToken(ctx context.Context) error {
	for {
		me, err := p.api.getMe(ctx)
		if err == nil {
			p.a.setMe(me)
			p.a.log.Info("polling Telegram", "bot", "@"+me.Username, "bot_id", itoa(me.ID), "offset", itoa(p.offset))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if isTokenRejected(err) {
			return p.a.reject(err)
		}
		if err := p.degraded(ctx, "cannot reach Telegram: "+err.Error(), p.retry.Failed(0)); err != nil {
			return err
		}
	}
}

// handle passes one update's message to the host, unless it is not for the
// bot or is history, and then moves the offset past it.
func (p *poller) handle(ctx context.Context, u *models.Update) error {
	if u.ID < p.offset {
		return nil // already taken; Telegram sent it again
	}
	p.a.mu.Lock()
	me := p.a.me
	p.a.mu.Unlock()
	m, why := inbound(p.s, me, u.Message)
	if m == nil && u.Message != nil && u.Message.From != nil {
		// Debug only: it names the chat and user ids to put in the allowlists.
		p.a.log.Debug("not answering", "reason", why, "update_id", itoa(u.ID),
			"chat", itoa(u.Message.Chat.ID), "chat_type", string(u.Message.Chat.Type), "user", itoa(u.Message.From.ID))
	}
	if m != nil {
		if p.since != 0 && u.Message.Date < int(p.since) {
			p.a.log.Debug("not answering history from before the bot started", "update_id", itoa(u.ID),
				"date", time.Unix(int64(u.Message.Date), 0).UTC())
		} else {
			p.a.log.Debug("message", "update_id", itoa(u.ID), "chat", m.ConversationID, "thread", m.ThreadID, "user", m.UserID)
			m.Cursor = strconv.FormatInt(u.ID+1, 10)
			if err := shared.Deliver(ctx, p.events, m); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("handing update %d to the host: %w", u.ID, err)
			}
		}
	}
	p.offset = u.ID + 1
	return nil
}

// receiving records a successful poll, telling the host on recovery.
func (p *poller) receiving(ctx context.Context) error {
	p.retry.Reset()
	if p.healthy {
		return nil
	}
	p.healthy, p.reason = true, ""
	p.a.log.Info("receiving messages from Telegram")
	return emit(ctx, p.events, shared.Event{Health: &shared.Health{State: shared.Connected}})
}

// failed handles a failed poll: fatal for a rejected token, otherwise
// Degraded and a wait (retry_after for a 429, backoff for the rest).
func (p *poller) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if isTokenRejected(err) {
		return p.a.reject(err)
	}
	wait := p.retry.Failed(0)
	reason := "polling Telegram failed: " + err.Error()
	switch status(err) {
	case http.StatusTooManyRequests:
		if s := retryAfter(err); s > 0 {
			wait = time.Duration(s) * time.Second
		}
		reason = fmt.Sprintf("Telegram asked to slow down (429, retry after %s)", wait)
	case http.StatusConflict:
		hook, werr := p.api.webhookURL(ctx)
		switch {
		case werr != nil && isTokenRejected(werr):
			return p.a.reject(werr)
		case werr == nil && hook != "" && p.s.deleteWebhook:
			if derr := p.api.deleteWebhook(ctx); derr != nil {
				if isTokenRejected(derr) {
					return p.a.reject(derr)
				}
				reason = "a webhook is set for this bot and deleting it failed: " + derr.Error()
				break
			}
			p.a.log.Warn("deleted the bot's webhook to poll instead (delete_webhook = true)", "webhook_host", hostOf(hook))
			return nil // poll again at once
		case werr == nil && hook != "":
			reason = "a webhook is set for this bot, so Telegram refuses getUpdates (409): " +
				"delete it, or set delete_webhook = true if it is not in use"
		default:
			reason = "another process is polling Telegram with this bot token (409 Conflict): " +
				"stop the other instance; retrying"
		}
	}
	return p.degraded(ctx, reason, wait)
}

// degraded tells the host the platform is not receiving (once per reason),
// then waits.
func (p *poller) degraded(ctx context.Context, reason string, wait time.Duration) error {
	p.healthy = false
	if reason != p.reason {
		p.reason = reason
		p.a.log.Warn("not receiving from Telegram", "reason", reason, "retry_in", wait)
		if err := emit(ctx, p.events, shared.Event{Health: &shared.Health{State: shared.Degraded, Message: reason}}); err != nil {
			return err
		}
	} else {
		p.a.log.Debug("still not receiving from Telegram", "reason", reason, "retry_in", wait)
	}
	return kit.Sleep(ctx, wait)
}

func emit(ctx context.Context, events chan<- shared.Event, ev shared.Event) error {
	select {
	case events <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// hostOf returns the host of a webhook URL, which is safe to log (its path
// may hold a secret).
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "?"
	}
	return u.Host
}

// itoa formats an id for a log line: the host's log would print a number
// this large in exponent notation.
func itoa(id int64) string { return strconv.FormatInt(id, 10) }
