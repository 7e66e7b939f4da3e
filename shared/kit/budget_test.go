package kit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// waiting returns how many Final calls wait in conv.
func (b *Budget) waitingIn(conv string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.convs[conv]; c != nil {
		return c.waiting
	}
	return 0
}

func (b *Budget) size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.convs)
}

func TestBudgetSkipsInterimWhenSpent(t *testing.T) {
	b := NewBudget(Rate{Every: time.Hour, Burst: 2})
	ctx := context.Background()
	for i := range 2 {
		if err := b.Wait(ctx, "A", Interim); err != nil {
			t.Fatalf("interim %d within the burst: %v", i+1, err)
		}
	}
	if err := b.Wait(ctx, "A", Interim); !errors.Is(err, ErrSkipped) {
		t.Fatalf("interim over the burst = %v, want ErrSkipped", err)
	}
	if err := b.Wait(ctx, "B", Interim); err != nil {
		t.Fatalf("another conversation's budget was spent too: %v", err)
	}
}

func TestBudgetNeverDropsFinal(t *testing.T) {
	b := NewBudget(Rate{Every: 5 * time.Millisecond, Burst: 1})
	for i := range 5 {
		if err := b.Wait(context.Background(), "A", Final); err != nil {
			t.Fatalf("final %d: %v", i+1, err)
		}
	}
	// A spent budget makes a final wait, not fail: only its context ends it.
	slow := NewBudget(Rate{Every: time.Hour, Burst: 1})
	if err := slow.Wait(context.Background(), "A", Final); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := slow.Wait(ctx, "A", Final); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("final on a spent budget = %v, want it to wait until its context ends", err)
	}
}

func TestBudgetInterimYieldsToWaitingFinal(t *testing.T) {
	b := NewBudget(Rate{Every: time.Hour, Burst: 1})
	if err := b.Wait(context.Background(), "A", Final); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = b.Wait(ctx, "A", Final) })
	defer wg.Wait()
	defer cancel()
	deadline := time.Now().Add(5 * time.Second)
	for b.waitingIn("A") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the second final never started waiting")
		}
		time.Sleep(time.Millisecond)
	}
	if err := b.Wait(context.Background(), "A", Interim); !errors.Is(err, ErrSkipped) {
		t.Fatalf("interim while a final waits = %v, want ErrSkipped", err)
	}
}

func TestBudgetHonoursRetryAfter(t *testing.T) {
	b := NewBudget(Rate{Every: time.Millisecond, Burst: 5})
	b.RetryAfter("A", time.Hour)
	if err := b.Wait(context.Background(), "A", Interim); !errors.Is(err, ErrSkipped) {
		t.Fatalf("interim during retry-after = %v, want ErrSkipped", err)
	}
	if err := b.Wait(context.Background(), "B", Interim); err != nil {
		t.Fatalf("retry-after for A held up B: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.Wait(ctx, "A", Final); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("final during an hour's retry-after = %v, want it to wait", err)
	}

	b.RetryAfterAll(time.Hour)
	if err := b.Wait(context.Background(), "B", Interim); !errors.Is(err, ErrSkipped) {
		t.Fatalf("interim during a global retry-after = %v, want ErrSkipped", err)
	}

	short := NewBudget(Rate{Every: time.Millisecond, Burst: 5})
	short.RetryAfter("A", 10*time.Millisecond)
	if err := short.Wait(context.Background(), "A", Final); err != nil {
		t.Fatalf("final after a short retry-after: %v", err)
	}
}

func TestBudgetDo(t *testing.T) {
	b := NewBudget(Rate{Every: time.Millisecond, Burst: 5})
	limited := &RetryAfterError{After: 5 * time.Millisecond, Err: errors.New("429")}
	calls := 0
	err := b.Do(context.Background(), "A", Final, func(context.Context) error {
		calls++
		if calls == 1 {
			return fmt.Errorf("posting: %w", limited)
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Fatalf("final rate limited once: err %v after %d calls, want nil after 2", err, calls)
	}

	calls = 0
	err = b.Do(context.Background(), "B", Interim, func(context.Context) error { calls++; return limited })
	if !errors.Is(err, ErrSkipped) || calls != 1 {
		t.Fatalf("interim rate limited: err %v after %d calls, want ErrSkipped after 1", err, calls)
	}

	calls = 0
	err = b.Do(context.Background(), "C", Final, func(context.Context) error { calls++; return limited })
	var ra *RetryAfterError
	if !errors.As(err, &ra) || calls != doTries {
		t.Fatalf("final always rate limited: err %v after %d calls, want the RetryAfterError after %d", err, calls, doTries)
	}

	boom := errors.New("boom")
	if err := b.Do(context.Background(), "D", Final, func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Do = %v, want the call's error", err)
	}
}

func TestBudgetForgetsIdleConversations(t *testing.T) {
	b := NewBudget(Rate{Every: time.Second, Burst: 1})
	now := time.Unix(1_700_000_000, 0)
	b.now = func() time.Time { return now }
	for i := range 1000 {
		_ = b.Wait(context.Background(), fmt.Sprint(i), Interim)
	}
	b.RetryAfter("held", 2*b.idle)
	now = now.Add(b.idle)
	_ = b.Wait(context.Background(), "new", Interim)
	if n := b.size(); n != 2 {
		t.Fatalf("%d conversations kept after the idle time, want 2 (the new one and one still in retry-after)", n)
	}
}

func TestBudgetZeroRateHoldsOnlyRetryAfter(t *testing.T) {
	b := NewBudget(Rate{})
	for i := range 100 {
		if err := b.Wait(context.Background(), "A", Interim); err != nil {
			t.Fatalf("interim %d with no rate: %v", i+1, err)
		}
	}
	b.RetryAfter("A", time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.Wait(ctx, "A", Final); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("final during retry-after with no rate = %v, want it to wait", err)
	}
	if err := b.Wait(context.Background(), "B", Final); err != nil {
		t.Fatalf("retry-after for A held up B: %v", err)
	}
}
