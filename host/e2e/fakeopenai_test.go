package e2e

import (
	"context"
	"fmt"
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
