package kit

import (
	"context"
	"errors"
	"testing"
	"time"
)

// runAsync starts r.Run with loop and returns where its result arrives.
func runAsync(r *Runner, loop func(context.Context) error) chan error {
	out := make(chan error, 1)
	go func() { out <- r.Run(context.Background(), nil, loop) }()
	return out
}

func waitRunning(t *testing.T, r *Runner) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !r.Running() {
		if time.Now().After(deadline) {
			t.Fatal("Run never started")
		}
		time.Sleep(time.Millisecond)
	}
}

func untilDone(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

func TestRunnerStopEndsRun(t *testing.T) {
	r := &Runner{Name: "test plugin"}
	res := runAsync(r, untilDone)
	waitRunning(t, r)
	if err := r.Stop(context.Background(), 5*time.Second); err != nil {
		t.Fatalf("Stop = %v", err)
	}
	if err := <-res; err != nil {
		t.Fatalf("Run after Stop = %v, want nil", err)
	}
	// A Run after Stop ends at once.
	if err := r.Run(context.Background(), nil, untilDone); err != nil {
		t.Fatalf("Run after Stop = %v, want nil at once", err)
	}
}

func TestRunnerFatalAndTransient(t *testing.T) {
	r := &Runner{}
	fe := Unauthorized("rejected", "check TOKEN")
	if err := r.Run(context.Background(), nil, func(context.Context) error { return fe }); AsFatal(err) != fe {
		t.Fatalf("Run = %v, want the fatal error", err)
	}
	boom := errors.New("connection reset")
	if err := r.Run(context.Background(), nil, func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the transient error as it is", err)
	}

	res := runAsync(r, untilDone)
	waitRunning(t, r)
	if got := r.Fail(fe); got != fe {
		t.Fatal("Fail did not return its error")
	}
	if err := <-res; AsFatal(err) != fe {
		t.Fatalf("Run after Fail = %v, want the fatal error", err)
	}
}

func TestRunnerOneRunAtATime(t *testing.T) {
	r := &Runner{Name: "test plugin"}
	res := runAsync(r, untilDone)
	waitRunning(t, r)
	if err := r.Run(context.Background(), nil, untilDone); err == nil {
		t.Fatal("a second Run while one runs succeeded")
	}
	_ = r.Stop(context.Background(), 5*time.Second)
	<-res
}

func TestRunnerStopIsBounded(t *testing.T) {
	r := &Runner{Name: "test plugin"}
	release := make(chan struct{})
	res := runAsync(r, func(context.Context) error { <-release; return nil })
	waitRunning(t, r)
	if err := r.Stop(context.Background(), 10*time.Millisecond); err == nil {
		t.Fatal("Stop of a Run that ignores its context returned nil")
	}
	close(release)
	<-res
}
