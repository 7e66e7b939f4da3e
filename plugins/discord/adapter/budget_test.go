package adapter

import (
	"errors"
	"testing"
	"time"

	"github.com/plughost/gateway/shared"
)

func TestIdentifyBudgetWindow(t *testing.T) {
	b := newIdentifyBudget(2)
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 2 {
		if err := b.take(t0.Add(time.Duration(i) * time.Minute)); err != nil {
			t.Fatalf("identify %d: %v", i+1, err)
		}
	}
	var fe *shared.FatalError
	if err := b.take(t0.Add(30 * time.Minute)); !errors.As(err, &fe) || fe.Code != CodeIdentifyBudget {
		t.Fatalf("third identify within the hour = %v, want fatal %s", err, CodeIdentifyBudget)
	}
	if err := b.take(t0.Add(time.Hour)); err != nil {
		t.Fatalf("an hour after the first identify the budget has room again: %v", err)
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	base, maxWait := time.Second, time.Minute
	seen := map[time.Duration]bool{}
	for n := range 40 {
		d := backoff(n, base, maxWait)
		want := min(base<<min(n, 20), maxWait)
		if d < want/2 || d > want {
			t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, want/2, want)
		}
		seen[d] = true
	}
	if len(seen) < 20 {
		t.Errorf("only %d distinct waits in 40 attempts: no jitter?", len(seen))
	}
}
