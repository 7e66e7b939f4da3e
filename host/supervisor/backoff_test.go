package supervisor

import (
	"testing"
	"time"
)

func TestBackoffGrowsJitteredAndCapped(t *testing.T) {
	b := backoff{initial: 100 * time.Millisecond, max: time.Second}
	for attempt := 1; attempt <= 10; attempt++ {
		base := b.initial << (attempt - 1)
		if base > b.max || base <= 0 {
			base = b.max
		}
		lo, hi := time.Duration(float64(base)*0.8), min(time.Duration(float64(base)*1.2), b.max)
		for range 200 {
			d := b.delay(attempt)
			if d < lo || d > hi {
				t.Fatalf("attempt %d: delay %s outside [%s, %s]", attempt, d, lo, hi)
			}
		}
	}
}

func TestBackoffJitterSpreads(t *testing.T) {
	b := backoff{initial: time.Second, max: time.Minute}
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[b.delay(3)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct delays in 50: no jitter", len(seen))
	}
}

func TestBreakerTripsWithinWindowOnly(t *testing.T) {
	br := breaker{limit: 3, window: time.Minute}
	now := time.Unix(1000, 0)
	if br.fail(now) || br.fail(now.Add(10*time.Second)) {
		t.Fatal("tripped before the limit")
	}
	// The first failure leaves the window before the third arrives.
	if br.fail(now.Add(61 * time.Second)) {
		t.Fatal("tripped although a failure had left the window")
	}
	if !br.fail(now.Add(62 * time.Second)) {
		t.Fatal("did not trip at 3 failures within the window")
	}
}
