package kit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Kind says whether a call to the platform may be skipped when a
// conversation's budget is spent.
type Kind int

const (
	// Final is a call the user must see: a message, the last edit of a
	// streamed reply. It waits for the budget; it is never skipped.
	Final Kind = iota
	// Interim is a call that the next one supersedes: an edit of a reply
	// still streaming, a typing indicator. It is skipped when the budget is
	// spent, when the platform asked to wait, or while a Final call waits.
	Interim
)

// ErrSkipped is what Budget.Wait returns for an Interim call that the
// budget has no room for. The caller drops the update; it is not an error
// to report.
var ErrSkipped = errors.New("rate budget spent: interim update skipped")

// Rate is the budget of one conversation: Burst calls at once, refilled at
// one call per Every. The zero Rate limits nothing of its own: only the
// platform's retry-after holds calls back.
type Rate struct {
	Every time.Duration
	Burst int
}

// Budget is a per-conversation rate budget shared by every call a plugin
// makes in a conversation (sends, edits, typing), so that streaming a reply
// can never earn the bot a flood ban. It honours a platform's retry-after
// for one conversation or for all, never drops a Final call and skips
// Interim ones when spent. Conversations idle for a while are forgotten, so
// memory stays bounded by the conversations active recently. The zero value
// is not usable; call NewBudget. Its methods are safe for concurrent use.
type Budget struct {
	rate Rate
	idle time.Duration    // a conversation unused this long is forgotten
	now  func() time.Time // tests move the clock

	mu        sync.Mutex
	convs     map[string]*convBudget
	global    time.Time // no call before this, in any conversation
	lastSweep time.Time
}

// convBudget is one conversation's budget.
type convBudget struct {
	limiter *rate.Limiter
	until   time.Time // no call before this (the platform's retry-after)
	waiting int       // Final calls waiting: Interim ones yield to them
	used    time.Time
}

// NewBudget returns a budget that allows each conversation r.
func NewBudget(r Rate) *Budget {
	if r.Burst < 1 {
		r.Burst = 1
	}
	return &Budget{
		rate:  r,
		idle:  max(5*time.Minute, 2*r.Every*time.Duration(r.Burst)),
		now:   time.Now,
		convs: map[string]*convBudget{},
	}
}

// Wait takes one call from conv's budget. A Final call waits until the
// budget and any retry-after allow it, or until ctx ends (returning ctx's
// error). An Interim call never waits: it returns ErrSkipped unless it can
// go at once.
func (b *Budget) Wait(ctx context.Context, conv string, kind Kind) error {
	reserved := false
	for {
		b.mu.Lock()
		now := b.now()
		c := b.conv(conv, now)
		hold := c.until
		if b.global.After(hold) {
			hold = b.global
		}
		if kind == Interim {
			ok := !now.Before(hold) && c.waiting == 0 && c.limiter.AllowN(now, 1)
			b.mu.Unlock()
			if !ok {
				return ErrSkipped
			}
			return nil
		}
		var wait time.Duration
		var r *rate.Reservation
		switch {
		case now.Before(hold):
			wait = hold.Sub(now)
		case reserved:
			b.mu.Unlock()
			return nil
		default:
			r = c.limiter.ReserveN(now, 1)
			reserved = true
			if wait = r.DelayFrom(now); wait == 0 {
				b.mu.Unlock()
				return nil
			}
		}
		c.waiting++
		b.mu.Unlock()
		err := Sleep(ctx, wait)
		b.mu.Lock()
		c.waiting--
		if err != nil && r != nil {
			r.CancelAt(b.now())
		}
		b.mu.Unlock()
		if err != nil {
			return err
		}
		// Check again: a retry-after may have come in while this waited.
	}
}

// RetryAfter records that the platform asked for no call in conv for d.
func (b *Budget) RetryAfter(conv string, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	c := b.conv(conv, now)
	if until := now.Add(d); until.After(c.until) {
		c.until = until
	}
}

// RetryAfterAll records that the platform asked for no call at all for d
// (a global rate limit).
func (b *Budget) RetryAfterAll(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if until := b.now().Add(d); until.After(b.global) {
		b.global = until
	}
}

// RetryAfterError is a platform's "too many requests, retry after": a
// plugin's platform client returns it so that Budget.Do can honour it.
type RetryAfterError struct {
	// After is how long the platform asked to wait.
	After time.Duration
	// Global is set when the limit is on every conversation, not one.
	Global bool
	// Err is the platform's error, if any.
	Err error
}

func (e *RetryAfterError) Error() string {
	scope := "this conversation"
	if e.Global {
		scope = "every conversation"
	}
	msg := fmt.Sprintf("rate limited in %s: retry after %v", scope, e.After)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// doTries bounds how often Do retries a Final call the platform keeps
// rate limiting.
const doTries = 5

// Do makes call within conv's budget. When call returns a *RetryAfterError,
// the wait is recorded; a Final call is then made again once the wait is
// over (up to five tries in all), an Interim one returns ErrSkipped.
func (b *Budget) Do(ctx context.Context, conv string, kind Kind, call func(context.Context) error) error {
	var err error
	for range doTries {
		if werr := b.Wait(ctx, conv, kind); werr != nil {
			return werr
		}
		err = call(ctx)
		var ra *RetryAfterError
		if !errors.As(err, &ra) {
			return err
		}
		if ra.Global {
			b.RetryAfterAll(ra.After)
		} else {
			b.RetryAfter(conv, ra.After)
		}
		if kind == Interim {
			return ErrSkipped
		}
	}
	return err
}

// conv returns conv's budget, creating it, and forgets idle ones. Callers
// hold b.mu.
func (b *Budget) conv(conv string, now time.Time) *convBudget {
	if now.Sub(b.lastSweep) >= b.idle/2 {
		b.lastSweep = now
		for id, c := range b.convs {
			if c.waiting == 0 && now.Sub(c.used) >= b.idle && !now.Before(c.until) {
				delete(b.convs, id)
			}
		}
	}
	c := b.convs[conv]
	if c == nil {
		c = &convBudget{limiter: rate.NewLimiter(rate.Every(b.rate.Every), b.rate.Burst)}
		b.convs[conv] = c
	}
	c.used = now
	return c
}
