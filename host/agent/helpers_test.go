package agent

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/provider/providertest"
	"github.com/plughost/gateway/host/store"

	"github.com/plughost/gateway/shared/kit/fakekit"
)

const testKey = "sk-agent-test-key"

// fakeClock is a settable clock for idle TTL tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func openaiConfig(srv *providertest.Server, maxAgents, maxConns int) Config {
	return Config{
		Providers: []provider.Config{
			{Name: "echo", Type: "echo"},
			{Name: "fake", Type: "openai", BaseURL: srv.URL, APIKey: testKey, Timeout: 10 * time.Second, MaxConnections: maxConns},
		},
		Model: "fake/m1", SystemPrompt: "You are terse.", HistoryLimit: 40,
		MaxAgents: maxAgents, IdleTTL: time.Hour,
	}
}

// tracked records every agent a service builds.
type tracked struct {
	mu     sync.Mutex
	agents []*Agent
}

func track(s *Service) *tracked {
	tr := &tracked{}
	s.cache.mu.Lock()
	s.cache.built = func(a *Agent) {
		tr.mu.Lock()
		tr.agents = append(tr.agents, a)
		tr.mu.Unlock()
	}
	s.cache.mu.Unlock()
	return tr
}

// closedOnce fails unless every agent built was closed exactly once, and
// returns how many were built.
func (tr *tracked) closedOnce(t testing.TB) int {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, a := range tr.agents {
		if n := a.closes.Load(); n != 1 {
			t.Fatalf("agent of %s (%s) closed %d times; want exactly once", a.key, a.spec.model, n)
		}
	}
	return len(tr.agents)
}

func newTestService(t testing.TB, cfg Config, opts Options) *Service {
	t.Helper()
	return newTestServiceAt(t, t.TempDir(), cfg, opts)
}

// openStore opens the session store in dir, closed when the test ends.
func openStore(t testing.TB, dir string, now func() time.Time) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(dir, store.FileName), &store.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// newTestServiceAt is newTestService on the store in dir.
func newTestServiceAt(t testing.TB, dir string, cfg Config, opts Options) *Service {
	t.Helper()
	if opts.Retry.BaseDelay == 0 {
		opts.Retry = provider.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = -1
	}
	s, err := New(cfg, openStore(t, dir, opts.Now), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeService(t, s) }) // Close is idempotent; before the store's cleanup
	return s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	fakekit.Eventually(t, within, what, cond)
}
