package supervisor

import (
	"testing"
	"time"
)

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
