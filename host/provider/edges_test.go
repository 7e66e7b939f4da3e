package provider

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plughost/gateway/host/provider/providertest"
)

// The case scaled down: many sessions behind a small pool, each
// answer well within timeout, the queue far longer than timeout. Waiting for
// a connection must not count: every answer is used, none retried.
func TestOpenAIPoolWaitDoesNotCountAgainstTimeout(t *testing.T) {
	const sessions, answer = 20, 300 * time.Millisecond
	srv := providertest.New(t)
	srv.Hold = func(ctx context.Context, _ *providertest.Request) {
		select {
		case <-time.After(answer):
		case <-ctx.Done():
		}
	}
	p := newTestProvider(t, srv, func(pc *Config) {
		pc.MaxConnections = 2
		pc.Timeout = time.Second // one answer fits; the queue (3 s) does not
	}, RetryPolicy{})
	var wg sync.WaitGroup
	errs := make([]error, sessions)
	sawQueue := make(chan struct{})
	var once sync.Once
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if p.PoolStats().Waiting >= sessions-2-1 {
				once.Do(func() { close(sawQueue) })
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for i := range sessions {
		wg.Go(func() {
			resp, err := p.Complete(context.Background(), userReq("hi"))
			if err == nil && resp.Content != "reply to: hi" {
				err = errors.New("wrong reply " + resp.Content)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("session %d: %v", i, err)
		}
	}
	if n := srv.Served(); n != sessions {
		t.Errorf("server saw %d requests; want %d (no retries)", n, sessions)
	}
	select {
	case <-sawQueue:
	default:
		t.Error("PoolStats never showed the requests waiting for a connection")
	}
	st := p.PoolStats()
	if st.Waiting != 0 || st.Waits != sessions || st.WaitSeconds <= 0 {
		t.Errorf("PoolStats after = %+v; want 0 waiting, %d waits, some wait time", st, sessions)
	}
	if peak := srv.PeakConns(); peak > 2 {
		t.Errorf("peak connections %d > max_connections 2", peak)
	}
}

// The pool wait is bounded by the caller's deadline (the turn's).
func TestOpenAIPoolWaitEndsWithCallerDeadline(t *testing.T) {
	srv := providertest.New(t)
	release := make(chan struct{})
	srv.Hold = func(ctx context.Context, _ *providertest.Request) {
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	p := newTestProvider(t, srv, func(pc *Config) { pc.MaxConnections = 1 }, RetryPolicy{})
	done := make(chan error, 1)
	go func() {
		_, err := p.Complete(context.Background(), userReq("first"))
		done <- err
	}()
	waitFor(t, func() bool { return srv.InFlight() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := p.Complete(ctx, userReq("second"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("queued request err = %v; want the caller's deadline", err)
	}
	if p.PoolStats().Waiting != 0 {
		t.Fatalf("a request that gave up still counts as waiting: %+v", p.PoolStats())
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestOpenAIRedirectIsAnErrorNamingBaseURL(t *testing.T) {
	for _, status := range []int{301, 302, 307, 308} {
		srv := providertest.New(t)
		// A loop: the redirect points back at the same URL.
		srv.Script(providertest.Scripted{Status: status, Location: srv.URL + "/chat/completions"})
		p := newTestProvider(t, srv, nil, RetryPolicy{})
		_, err := p.Complete(context.Background(), userReq("hi"))
		var pe *Error
		if !errors.As(err, &pe) || pe.Kind != KindMisconfigured {
			t.Fatalf("HTTP %d: err = %v; want KindMisconfigured", status, err)
		}
		if !strings.Contains(pe.Message, "base_url") || !strings.Contains(pe.Message, srv.URL) {
			t.Errorf("HTTP %d: message %q does not name base_url and the URL", status, pe.Message)
		}
		if n := srv.Served(); n != 1 {
			t.Errorf("HTTP %d: %d requests; want 1 (no redirect followed, no retry)", status, n)
		}
	}
}

func TestOpenAIHTTPSAgainstPlainHTTPIsPermanent(t *testing.T) {
	srv := providertest.New(t)
	p := newTestProvider(t, srv, func(pc *Config) {
		pc.BaseURL = "https://" + strings.TrimPrefix(srv.URL, "http://")
	}, RetryPolicy{})
	_, err := p.Complete(context.Background(), userReq("hi"))
	var pe *Error
	if !errors.As(err, &pe) || pe.Kind != KindMisconfigured || !strings.Contains(pe.Message, "plain HTTP") {
		t.Fatalf("err = %v; want KindMisconfigured saying the server speaks plain HTTP", err)
	}
	if n := srv.AcceptedConns(); n != 1 {
		t.Errorf("%d connections; want 1 (not retried)", n)
	}
}

func TestOpenAIBodyOverCapIsPermanent(t *testing.T) {
	srv := providertest.New(t)
	big := strings.Repeat("x", MaxBodyBytes+1)
	srv.Reply = func(*providertest.Request) string { return big }
	// 16 MiB of JSON takes seconds under -race on a busy machine.
	p := newTestProvider(t, srv, func(pc *Config) { pc.Timeout = time.Minute }, RetryPolicy{})
	_, err := p.Complete(context.Background(), userReq("hi"))
	var pe *Error
	if !errors.As(err, &pe) || pe.Kind != KindBadResponse || !strings.Contains(pe.Message, "over 16 MiB") {
		t.Fatalf("err = %v; want KindBadResponse over 16 MiB", err)
	}
	if n := srv.Served(); n != 1 {
		t.Errorf("%d requests; want 1 (not retried)", n)
	}
}

func TestOpenAIConnectionRefusedIsRetried(t *testing.T) {
	srv := providertest.New(t)
	url := srv.URL
	srv.Close()
	p := newTestProvider(t, srv, func(pc *Config) { pc.BaseURL = url }, RetryPolicy{MaxAttempts: 3})
	_, err := p.Complete(context.Background(), userReq("hi"))
	var pe *Error
	if !errors.As(err, &pe) || pe.Kind != KindUnavailable || pe.Attempts != 3 {
		t.Fatalf("err = %v; want KindUnavailable after 3 attempts", err)
	}
}

func TestOpenAIStreamStalledAfterHeadersTimesOut(t *testing.T) {
	srv := providertest.New(t)
	srv.Script(providertest.Scripted{Stall: true})
	p := newTestProvider(t, srv, func(pc *Config) { pc.StreamIdleTimeout = 200 * time.Millisecond }, RetryPolicy{})
	st, err := p.Stream(context.Background(), userReq("hi"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := st.Recv()
	if err != nil || c.Delta != "stalled " {
		t.Fatalf("first chunk = %+v, %v", c, err)
	}
	_, err = st.Recv()
	var pe *Error
	if !errors.As(err, &pe) || pe.Kind != KindTimeout || !strings.Contains(pe.Message, "stream_idle_timeout") {
		t.Fatalf("err = %v; want KindTimeout naming stream_idle_timeout", err)
	}
}
