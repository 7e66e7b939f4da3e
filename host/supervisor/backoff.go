package supervisor

import (
	"math/rand/v2"
	"time"
)

// backoff computes capped, jittered exponential delays: attempt n (from 1)
// waits initial*2^(n-1), capped at max, then scaled by a random factor in
// [0.8, 1.2) and capped again, so a fleet of plugins does not retry in step.
type backoff struct {
	initial, max time.Duration
}

func (b backoff) delay(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := b.initial
	for i := 1; i < attempt && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return min(d, b.max)
}

// breaker trips after limit failures within window.
type breaker struct {
	limit    int
	window   time.Duration
	failures []time.Time
}

// fail records a failure at now and reports whether the breaker tripped.
func (b *breaker) fail(now time.Time) bool {
	keep := b.failures[:0]
	for _, t := range b.failures {
		if now.Sub(t) < b.window {
			keep = append(keep, t)
		}
	}
	b.failures = append(keep, now)
	return b.limit > 0 && len(b.failures) >= b.limit
}

func (b *breaker) reset() { b.failures = b.failures[:0] }
