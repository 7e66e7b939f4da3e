package agent

import (
	"sync"

	"github.com/plughost/gateway/host/provider"
)

type errorKey struct {
	provider string
	kind     provider.Kind
}

// errorCounts counts provider errors by provider and kind.
type errorCounts struct {
	mu sync.Mutex
	n  map[errorKey]uint64
}

func newErrorCounts() *errorCounts { return &errorCounts{n: make(map[errorKey]uint64)} }

func (e *errorCounts) inc(prov string, kind provider.Kind) {
	if kind == "" {
		kind = "other"
	}
	e.mu.Lock()
	e.n[errorKey{prov, kind}]++
	e.mu.Unlock()
}

func (e *errorCounts) snapshot() map[errorKey]uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[errorKey]uint64, len(e.n))
	for k, v := range e.n {
		out[k] = v
	}
	return out
}

// ProviderErrors returns the provider errors counted so far, by provider then
// kind.
func (s *Service) ProviderErrors() map[string]map[provider.Kind]uint64 {
	out := map[string]map[provider.Kind]uint64{}
	for k, v := range s.errs.snapshot() {
		if out[k.provider] == nil {
			out[k.provider] = map[provider.Kind]uint64{}
		}
		out[k.provider][k.kind] = v
	}
	return out
}

// PoolStats returns, for each provider with a connection pool, the requests
// waiting for a connection and the time they waited.
func (s *Service) PoolStats() map[string]provider.PoolStats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string]provider.PoolStats{}
	for name, ref := range s.providers {
		if p, ok := ref.p.(interface{ PoolStats() provider.PoolStats }); ok {
			out[name] = p.PoolStats()
		}
	}
	return out
}
