package kit

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is a capped, jittered exponential backoff: retry attempt n (from 1)
// waits a random time in the upper half of Initial·2^(n-1), capped at Max,
// so that many clients dropped at once do not retry in step, and a wait is
// never more than Max.
type Backoff struct {
	// Initial is the first delay (before jitter); it doubles per attempt.
	Initial time.Duration
	// Max caps every delay.
	Max time.Duration
}

// Delay returns the wait before retry attempt n (1 for the first retry).
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.Initial
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// Sleep waits d, or until ctx ends, and returns ctx's error in that case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Retry counts the failures of a reconnect loop for its Backoff: the wait
// grows with each failure in a row and starts over once a connection stayed
// up for StableAfter. The zero value of StableAfter never starts over by
// itself (call Reset).
type Retry struct {
	Backoff     Backoff
	StableAfter time.Duration
	failures    int
}

// Failed records a failure of a connection that had been up for upFor (0
// when it never came up) and returns the wait before the next attempt.
func (r *Retry) Failed(upFor time.Duration) time.Duration {
	if r.StableAfter > 0 && upFor >= r.StableAfter {
		r.failures = 0
	}
	r.failures++
	return r.Backoff.Delay(r.failures)
}

// Failures returns the failures in a row counted so far.
func (r *Retry) Failures() int { return r.failures }

// Reset starts the backoff over.
func (r *Retry) Reset() { r.failures = 0 }
