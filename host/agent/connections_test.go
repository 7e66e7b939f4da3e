package agent

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/plughost/gateway/host/provider/providertest"
)

// The seed bug: evicted agents leaked their connection pools. 1,000 sessions
// through 8 cached agents and 8 allowed connections must never hold more
// than 8 (+ a small constant for closes the server has not yet seen) open,
// and none after Close.
func TestThousandSessionsKeepConnectionsBounded(t *testing.T) {
	srv := providertest.New(t)
	srv.APIKey = testKey
	srv.Hold = func(ctx context.Context, _ *providertest.Request) {
		// A little latency so that requests overlap and the pool is contended.
		select {
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
		}
	}
	s := newTestService(t, openaiConfig(srv, 8, 8), Options{})
	tr := track(s)

	const sessions, workers = 1000, 32
	keys := make(chan string)
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for key := range keys {
				for turn := range 2 {
					got, err := s.Reply(context.Background(), key, fmt.Sprint(key, " turn ", turn))
					if err != nil {
						errc <- err
						return
					}
					if want := fmt.Sprint("reply to: ", key, " turn ", turn); got != want {
						errc <- fmt.Errorf("reply %q; want %q", got, want)
						return
					}
				}
			}
		})
	}
	for i := range sessions {
		keys <- fmt.Sprint("session-", i)
	}
	close(keys)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}

	const slack = 2
	if peak := srv.PeakConns(); peak > 8+slack {
		t.Fatalf("peak open connections %d; max_connections is 8", peak)
	}
	st := s.Stats()
	if st.Agents > 8 {
		t.Fatalf("%d agents cached; max_agents is 8", st.Agents)
	}
	closeService(t, s)
	if n := srv.WaitOpenConns(0, 5*time.Second); n != 0 {
		t.Fatalf("%d connections open after Close", n)
	}
	st = s.Stats()
	built := tr.closedOnce(t)
	if st.Evictions != st.Closed || st.Closed != uint64(built) {
		t.Fatalf("stats %+v: evictions, closes and agents built (%d) must agree", st, built)
	}
	t.Logf("%d sessions, %d requests: %d agents built and closed, peak %d conns (%d accepted), evictions %v",
		sessions, srv.Served(), built, srv.PeakConns(), srv.AcceptedConns(), st.EvictionsByReason)
}

// 500 /model and /new switches, each between replies: every eviction is
// matched by exactly one close.
func TestModelAndNewSwitchesCloseEachAgentOnce(t *testing.T) {
	srv := providertest.New(t)
	s := newTestService(t, openaiConfig(srv, 8, 8), Options{})
	tr := track(s)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 10 {
		wg.Go(func() {
			key := fmt.Sprint("user-", w)
			for i := range 50 {
				if _, err := s.Reply(ctx, key, "hi"); err != nil {
					t.Error(err)
					return
				}
				var err error
				switch i % 3 {
				case 0:
					err = s.SetModel(ctx, key, fmt.Sprint("fake/m", i%5))
				case 1:
					err = s.Reset(ctx, key)
				case 2:
					err = s.SetModel(ctx, key, "echo/echo")
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, "evicted agents to close", 5*time.Second, func() bool { return s.Stats().Closing == 0 })
	st := s.Stats()
	if st.Evictions != st.Closed {
		t.Fatalf("evictions %d != closes %d (%+v)", st.Evictions, st.Closed, st)
	}
	if st.EvictionsByReason[ReasonReset] == 0 || st.EvictionsByReason[ReasonModelSwitch] == 0 {
		t.Fatalf("by reason: %v", st.EvictionsByReason)
	}
	closeService(t, s)
	built := tr.closedOnce(t)
	st = s.Stats()
	if st.Closed != uint64(built) || st.Evictions != st.Closed {
		t.Fatalf("%d agents built, stats %+v", built, st)
	}
	if n := srv.WaitOpenConns(0, 5*time.Second); n != 0 {
		t.Fatalf("%d connections open after Close", n)
	}
}

// An agent evicted while its reply is in flight is closed only after the
// reply has completed (and was recorded).
func TestSlowReplyFinishesBeforeEvictedAgentCloses(t *testing.T) {
	srv := providertest.New(t)
	release := make(chan struct{})
	srv.Hold = func(ctx context.Context, _ *providertest.Request) {
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	s := newTestService(t, openaiConfig(srv, 8, 8), Options{Grace: time.Minute})
	tr := track(s)
	type result struct {
		text string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		text, err := s.Reply(context.Background(), "alice", "slow question")
		done <- result{text, err}
	}()
	waitFor(t, "the request to reach the provider", 5*time.Second, func() bool { return srv.InFlight() == 1 })

	// The eviction returns at once although the reply is running.
	if err := s.SetModel(context.Background(), "alice", "echo/echo"); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Evictions != 1 || st.Closed != 0 || st.Closing != 1 || st.Agents != 0 {
		t.Fatalf("during the reply: %+v; want 1 eviction, 0 closes", st)
	}
	tr.mu.Lock()
	a := tr.agents[0]
	tr.mu.Unlock()
	if a.closes.Load() != 0 {
		t.Fatal("agent closed under its running reply")
	}

	close(release)
	r := <-done
	if r.err != nil || r.text != "reply to: slow question" {
		t.Fatalf("reply = %q, %v", r.text, r.err)
	}
	waitFor(t, "the evicted agent to close", 5*time.Second, func() bool { return s.Stats().Closed == 1 })
	if a.closes.Load() != 1 {
		t.Fatalf("agent closed %d times", a.closes.Load())
	}
	if info, _ := s.Session("alice"); info.Messages != 2 || info.Model != "echo/echo" {
		t.Fatalf("session = %+v; the reply must be recorded", info)
	}
}

// After the grace period the evicted agent's request is cancelled so that it
// can be closed; the user is told why.
func TestEvictedReplyCancelledAfterGrace(t *testing.T) {
	srv := providertest.New(t)
	srv.Hold = func(ctx context.Context, _ *providertest.Request) { <-ctx.Done() }
	s := newTestService(t, openaiConfig(srv, 8, 8), Options{Grace: 50 * time.Millisecond})
	errc := make(chan error, 1)
	go func() { _, err := s.Reply(context.Background(), "bob", "never answered"); errc <- err }()
	waitFor(t, "the request to reach the provider", 5*time.Second, func() bool { return srv.InFlight() == 1 })
	if err := s.Reset(context.Background(), "bob"); err != nil {
		t.Fatal(err)
	}
	err := <-errc
	var ue *UserError
	if !asUserError(err, &ue) || ue.Message == "" {
		t.Fatalf("reply = %v; want a *UserError", err)
	}
	waitFor(t, "the agent to close", 5*time.Second, func() bool { return s.Stats().Closed == 1 })
	if n := srv.WaitOpenConns(1, 5*time.Second); n > 1 {
		t.Fatalf("%d connections open", n)
	}
}

// Close with a deadline cancels replies still running and leaves nothing open.
func TestCloseCancelsRepliesAtDeadline(t *testing.T) {
	srv := providertest.New(t)
	srv.Hold = func(ctx context.Context, _ *providertest.Request) { <-ctx.Done() }
	s := newTestService(t, openaiConfig(srv, 8, 8), Options{Grace: time.Hour})
	tr := track(s)
	errc := make(chan error, 3)
	for i := range 3 {
		go func() { _, err := s.Reply(context.Background(), fmt.Sprint("k", i), "x"); errc <- err }()
	}
	waitFor(t, "3 requests in flight", 5*time.Second, func() bool { return srv.InFlight() == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := <-errc; err == nil {
			t.Fatal("a reply succeeded although it was cancelled")
		}
	}
	if n := srv.WaitOpenConns(0, 5*time.Second); n != 0 {
		t.Fatalf("%d connections open after Close", n)
	}
	if built := tr.closedOnce(t); built != 3 {
		t.Fatalf("%d agents built", built)
	}
	if _, err := s.Reply(context.Background(), "k0", "late"); err == nil {
		t.Fatal("Reply after Close succeeded")
	}
}
