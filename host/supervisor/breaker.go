package supervisor

import "time"

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

// reset forgets the failures, for a platform started again by hand.
func (b *breaker) reset() { b.failures = b.failures[:0] }
