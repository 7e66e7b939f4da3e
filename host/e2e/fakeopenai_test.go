package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/plughost/gateway/host/provider/providertest"
)

// newFakeOpenAI starts an OpenAI-compatible server on loopback that takes
// the key "sk-test-key". Its reply names how many user messages the request
// carried and the last one ("turns=2 last=hi"), so tests see the history the
// gateway sent; a user message "slow N" makes it wait N milliseconds first.
func newFakeOpenAI(t *testing.T) *providertest.Server {
	t.Helper()
	s := providertest.New(t)
	s.APIKey = "sk-test-key"
	s.Reply = func(r *providertest.Request) string {
		users := 0
		for _, m := range r.Messages {
			if m.Role == "user" {
				users++
			}
		}
		return fmt.Sprintf("turns=%d last=%s", users, r.LastUser())
	}
	s.Hold = func(ctx context.Context, r *providertest.Request) {
		var ms int
		if _, err := fmt.Sscanf(r.LastUser(), "slow %d", &ms); err != nil {
			return
		}
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-ctx.Done():
		}
	}
	return s
}

// streamGate holds the fake provider's streamed replies after their first
// chunk until released: a test sees what arrived while the provider still
// holds the rest.
type streamGate struct {
	mu       sync.Mutex
	open     chan struct{}
	released bool
}

// holdStreams installs a closed-until-released gate on ai; it is released
// when the test ends.
func holdStreams(t *testing.T, ai *providertest.Server) *streamGate {
	g := &streamGate{open: make(chan struct{})}
	t.Cleanup(g.release)
	ai.ChunkHold = func(ctx context.Context, _ *providertest.Request, i int) {
		if i != 1 {
			return
		}
		g.mu.Lock()
		open := g.open
		g.mu.Unlock()
		select {
		case <-open:
		case <-ctx.Done():
		}
	}
	return g
}

// release lets every held stream go on.
func (g *streamGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.released {
		g.released = true
		close(g.open)
	}
}

// rearm holds the next streams again.
func (g *streamGate) rearm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.released {
		g.open, g.released = make(chan struct{}), false
	}
}
