package agent

import (
	"context"
	"time"
)

// Sweep evicts the agents idle for at least idle_ttl now; the sweeper calls
// it periodically, tests call it after moving their clock.
func (s *Service) Sweep() int { return s.cache.sweep() }

func (s *Service) sweeper() {
	defer close(s.sweepDone)
	if s.opts.SweepInterval < 0 {
		<-s.stopSweep
		return
	}
	for {
		every := s.opts.SweepInterval
		if every == 0 {
			_, ttl := s.cache.limits()
			every = min(max(ttl/4, time.Second), time.Minute)
		}
		t := time.NewTimer(every)
		select {
		case <-t.C:
			if n := s.cache.sweep(); n > 0 {
				s.log.Debug("evicted idle agents", "count", n)
			}
		case <-s.stopSweep:
			t.Stop()
			return
		}
	}
}

// Apply reloads the configuration: new cache limits and TTL, providers
// added, removed or changed. Agents whose provider, model or prompt settings
// changed are evicted with ReasonReload; a replaced provider is closed once
// its last agent is. On error the running configuration is kept.
func (s *Service) Apply(cfg Config) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	old := s.providers
	next, err := buildProviders(cfg, old, s.log, s.opts)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if err := checkModel(cfg, next); err != nil {
		var fresh []*providerRef
		for name, r := range next {
			if old[name] != r {
				fresh = append(fresh, r)
			}
		}
		s.mu.Unlock()
		for _, r := range fresh {
			r.retire()
		}
		return err
	}
	s.cfg, s.providers = cfg, next
	s.mu.Unlock()

	maxAgents, ttl := cacheLimits(cfg)
	s.cache.setLimits(maxAgents, ttl, ReasonReload)
	// Only the agents whose own settings changed are evicted.
	n := s.cache.evictIf(ReasonReload, func(a *Agent) bool {
		prov, _, _ := splitModel(a.spec.model)
		named := cfg.named(a.spec.agent)
		return next[prov] != a.spec.ref || named.Name != a.spec.agent || a.spec.systemPrompt != named.SystemPrompt ||
			a.spec.historyLimit != max(named.HistoryLimit, 0) || a.spec.tools != named.toolKey() || a.spec.maxToolRounds != named.MaxToolRounds
	})
	for name, r := range old {
		if next[name] != r {
			r.retire()
		}
	}
	s.log.Info("configuration applied", "providers", len(next), "evicted", n, "max_agents", maxAgents, "idle_ttl", ttl)
	return nil
}

// Close evicts every agent (ReasonShutdown) and waits for them to close,
// cancelling replies still running when ctx ends; then it closes the
// providers (no connection left open). The store stays open for its owner
// to close.
func (s *Service) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { s.closeErr = s.close(ctx) })
	return s.closeErr
}

func (s *Service) close(ctx context.Context) error {
	close(s.stopSweep)
	<-s.sweepDone
	done := s.cache.shutdown()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("shutdown deadline reached; cancelling replies in flight")
		s.cache.cancelAll()
	}
	s.cache.wait()
	s.mu.Lock()
	refs := s.providers
	s.providers = map[string]*providerRef{}
	s.closed = true
	s.mu.Unlock()
	s.waitOneOffs(ctx) // their turns hold provider references
	closeRefs(refs)
	s.flushes.Wait() // every Flush returns once the store committed what was queued
	return nil
}
