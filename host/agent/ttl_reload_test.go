package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/provider/providertest"
)

func TestIdleTTLEvictsWithFakeClock(t *testing.T) {
	clock := newFakeClock()
	cfg := echoConfig()
	cfg.IdleTTL = 10 * time.Minute
	s := newTestService(t, cfg, Options{Now: clock.Now})
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c"} {
		if _, err := s.Reply(ctx, k, "hi"); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(6 * time.Minute)
	if _, err := s.Reply(ctx, "b", "still here"); err != nil {
		t.Fatal(err)
	}
	if n := s.Sweep(); n != 0 {
		t.Fatalf("swept %d agents before any reached the TTL", n)
	}
	clock.Advance(5 * time.Minute) // a and c idle 11m, b idle 5m
	if n := s.Sweep(); n != 2 {
		t.Fatalf("swept %d; want 2", n)
	}
	waitFor(t, "idle agents to close", 5*time.Second, func() bool { return s.Stats().Closed == 2 })
	st := s.Stats()
	if st.Agents != 1 || st.EvictionsByReason[ReasonIdle] != 2 || st.ClosedByReason[ReasonIdle] != 2 {
		t.Fatalf("stats %+v", st)
	}
	clock.Advance(time.Hour)
	if n := s.Sweep(); n != 1 {
		t.Fatalf("swept %d; want b now", n)
	}
}

func TestIdleSweepSkipsAgentsInUse(t *testing.T) {
	srv := providertest.New(t)
	release := make(chan struct{})
	srv.Hold = func(ctx context.Context, _ *providertest.Request) {
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	clock := newFakeClock()
	cfg := openaiConfig(srv, 8, 8)
	cfg.IdleTTL = time.Minute
	s := newTestService(t, cfg, Options{Now: clock.Now})
	done := make(chan error, 1)
	go func() { _, err := s.Reply(context.Background(), "busy", "x"); done <- err }()
	waitFor(t, "request in flight", 5*time.Second, func() bool { return srv.InFlight() == 1 })
	clock.Advance(time.Hour)
	if n := s.Sweep(); n != 0 {
		t.Fatalf("swept %d agents; the busy one is not idle", n)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestApplyEvictsChangedAgentsAndClosesOldProvider(t *testing.T) {
	srvA := providertest.New(t)
	srvB := providertest.New(t)
	cfg := openaiConfig(srvA, 8, 8)
	s := newTestService(t, cfg, Options{})
	tr := track(s)
	ctx := context.Background()
	if _, err := s.Reply(ctx, "on-fake", "hi"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetModel(ctx, "on-echo", "echo/echo"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reply(ctx, "on-echo", "hi"); err != nil {
		t.Fatal(err)
	}
	if srvA.OpenConns() == 0 {
		t.Fatal("expected an idle keep-alive connection to provider A")
	}

	// Same config: nothing changes.
	same := cfg
	if err := s.Apply(same); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Evictions != 0 {
		t.Fatalf("an unchanged reload evicted: %+v", st)
	}

	// Point "fake" at another server: its agents go, echo's stay, and the old
	// provider's connections drop to zero once its agent is closed.
	next := cfg
	next.Providers = []provider.Config{cfg.Providers[0],
		{Name: "fake", Type: "openai", BaseURL: srvB.URL, APIKey: testKey, MaxConnections: 8}}
	if err := s.Apply(next); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload eviction to close", 5*time.Second, func() bool { return s.Stats().Closed == 1 })
	if st := s.Stats(); st.EvictionsByReason[ReasonReload] != 1 || st.Agents != 1 {
		t.Fatalf("stats %+v; want the fake agent evicted for reload, echo's kept", st)
	}
	if n := srvA.WaitOpenConns(0, 5*time.Second); n != 0 {
		t.Fatalf("%d connections to the replaced provider stay open", n)
	}
	if _, err := s.Reply(ctx, "on-fake", "after reload"); err != nil {
		t.Fatal(err)
	}
	if srvB.Served() != 1 || !sentHistory(srvB.LastRequest(), "hi") {
		t.Fatalf("the new provider did not get the conversation")
	}

	// A new system prompt evicts everyone; a smaller cache evicts to fit.
	prompt := next
	prompt.SystemPrompt = "New prompt."
	if err := s.Apply(prompt); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Agents != 0 || st.EvictionsByReason[ReasonReload] != 3 {
		t.Fatalf("stats %+v", st)
	}

	// Removing the provider a session uses tells that session what to do.
	removed := prompt
	removed.Providers = []provider.Config{cfg.Providers[0]}
	removed.Model = "echo/echo"
	if err := s.Apply(removed); err != nil {
		t.Fatal(err)
	}
	if err := s.SetModel(ctx, "on-fake", "echo/echo"); err != nil {
		t.Fatal(err)
	}
	_ = s.SetModel(ctx, "stuck", "echo/x")
	// A session whose override names a removed provider gets a UserError.
	if err := s.store.SetModel(ctx, "stuck", "fake/m1"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Reply(ctx, "stuck", "hello")
	var ue *UserError
	if !asUserError(err, &ue) || !strings.Contains(ue.Message, "not configured") {
		t.Fatalf("err = %v", err)
	}

	// A config whose default model names no provider is refused; the running one stays.
	bad := removed
	bad.Model = "ghost/m"
	if err := s.Apply(bad); err == nil {
		t.Fatal("Apply accepted a model without a provider")
	}
	if got, err := s.Reply(ctx, "on-echo", "still"); err != nil || got != "echo: still" {
		t.Fatalf("after a refused reload: %q, %v", got, err)
	}
	closeService(t, s)
	tr.closedOnce(t)
	if n := srvB.WaitOpenConns(0, 5*time.Second); n != 0 {
		t.Fatalf("%d connections open after Close", n)
	}
}

func TestApplySmallerCacheEvictsToFit(t *testing.T) {
	cfg := echoConfig()
	s := newTestService(t, cfg, Options{})
	for _, k := range []string{"a", "b", "c", "d"} {
		if _, err := s.Reply(context.Background(), k, "x"); err != nil {
			t.Fatal(err)
		}
	}
	small := cfg
	small.MaxAgents = 2
	if err := s.Apply(small); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Agents != 2 || st.MaxAgents != 2 || st.Evictions != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCollectors(t *testing.T) {
	srv := providertest.New(t)
	srv.APIKey = "other"
	s := newTestService(t, openaiConfig(srv, 8, 8), Options{})
	_, _ = s.Reply(context.Background(), "a", "x")
	reg := prometheus.NewPedanticRegistry()
	for _, c := range s.Collectors() {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if mf.GetName() == "gateway_provider_errors_total" {
			m := mf.GetMetric()[0]
			if m.GetCounter().GetValue() != 1 {
				t.Fatalf("provider errors = %v", m)
			}
		}
	}
	for _, n := range []string{"gateway_agent_cache_agents", "gateway_agent_cache_max_agents", "gateway_agent_evictions_total",
		"gateway_agent_closes_total", "gateway_provider_errors_total", "gateway_store_commits_total"} {
		if !names[n] {
			t.Errorf("metric %s missing (have %v)", n, names)
		}
	}
}
