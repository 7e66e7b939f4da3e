package agent

import (
	"maps"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/host/provider"
)

// providerRef is a configured provider shared by the agents that use it. A
// reload that changes or removes the provider retires the ref: the running
// agents keep it until they are closed, and the last one to let go closes the
// provider (its connections drop to zero).
type providerRef struct {
	p    provider.Provider
	conf provider.Config // copy, to detect changes on reload

	mu      sync.Mutex
	refs    int
	retired bool
	closed  bool
	log     hclog.Logger
}

func newProviderRef(conf provider.Config, log hclog.Logger, retry provider.RetryPolicy) (*providerRef, error) {
	p, err := provider.New(conf, &provider.Options{Logger: log.Named("provider"), Retry: retry})
	if err != nil {
		return nil, err
	}
	conf.Headers = maps.Clone(conf.Headers)
	return &providerRef{p: p, conf: conf, log: log}, nil
}

// hold takes a reference for a new agent; it fails once the provider was
// retired (a reload replaced it between resolving and building).
func (r *providerRef) hold() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.retired {
		return false
	}
	r.refs++
	return true
}

// release drops one agent's reference; the last one on a retired provider
// closes it.
func (r *providerRef) release() {
	r.mu.Lock()
	r.refs--
	last := r.refs == 0 && r.retired && !r.closed
	if last {
		r.closed = true
	}
	r.mu.Unlock()
	if last {
		r.close()
	}
}

// retire marks the provider replaced; it is closed now if no agent holds it.
func (r *providerRef) retire() {
	r.mu.Lock()
	r.retired = true
	now := r.refs == 0 && !r.closed
	if now {
		r.closed = true
	}
	r.mu.Unlock()
	if now {
		r.close()
	}
}

func (r *providerRef) close() {
	if err := r.p.Close(); err != nil {
		r.log.Warn("closing provider failed", "provider", r.conf.Name, "error", err)
	}
}
