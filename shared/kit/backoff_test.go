package kit

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoffIsCappedAndJittered(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: time.Minute}
	seen := map[time.Duration]bool{}
	for n := 1; n <= 40; n++ {
		d := b.Delay(n)
		want := min(b.Initial<<min(n-1, 20), b.Max)
		if d < want/2 || d > want {
			t.Fatalf("Delay(%d) = %v, want within [%v, %v]", n, d, want/2, want)
		}
		seen[d] = true
	}
	if len(seen) < 20 {
		t.Errorf("only %d distinct waits in 40 attempts: no jitter?", len(seen))
	}
	if d := b.Delay(0); d > b.Initial {
		t.Errorf("Delay(0) = %v, want at most Initial", d)
	}
	if d := (Backoff{Initial: time.Hour, Max: time.Second}).Delay(1); d > time.Second {
		t.Errorf("Initial above Max: Delay(1) = %v, want capped at Max", d)
	}
	if d := (Backoff{}).Delay(3); d != 0 {
		t.Errorf("zero Backoff waits %v, want 0", d)
	}
}

func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Sleep = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled context = %v, want context.Canceled", err)
	}
	if err := Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep(0) on a cancelled context = %v, want context.Canceled", err)
	}
}

func TestRetryStartsOverAfterAStableConnection(t *testing.T) {
	r := Retry{Backoff: Backoff{Initial: time.Second, Max: time.Hour}, StableAfter: time.Minute}
	for range 5 {
		r.Failed(time.Second)
	}
	if r.Failures() != 5 {
		t.Fatalf("Failures = %d, want 5", r.Failures())
	}
	if d := r.Failed(0); d < 16*time.Second {
		t.Fatalf("sixth failure in a row waits %v, want at least 16s", d)
	}
	if d := r.Failed(2 * time.Minute); d > time.Second || r.Failures() != 1 {
		t.Fatalf("after a stable connection: wait %v, failures %d; want the first delay again", d, r.Failures())
	}
	r.Reset()
	if r.Failures() != 0 {
		t.Fatal("Reset did not start over")
	}
}
