package adapter

import (
	"fmt"
	"sync"
	"time"

	"github.com/plughost/gateway/shared"
)

// identifyBudget caps identifies in a sliding window. Discord resets the
// token of a bot that identifies too often, so a session that keeps failing
// in a way the plugin does not recognise must end as fatal rather than
// identify forever.
type identifyBudget struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	times  []time.Time
}

func newIdentifyBudget(limit int) *identifyBudget {
	return &identifyBudget{limit: limit, window: time.Hour}
}

// take spends one identify, or returns a fatal error when the window's
// budget is spent.
func (b *identifyBudget) take(now time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prune(now)
	if len(b.times) >= b.limit {
		return &shared.FatalError{
			Code:    CodeIdentifyBudget,
			Message: fmt.Sprintf("gave up after %d gateway identifies within an hour (identify_budget = %d)", len(b.times), b.limit),
			Hint: "Discord resets the token of bots that identify too often; check the plugin's log for why " +
				"sessions keep ending (network, token, intents), then restart the platform",
		}
	}
	b.times = append(b.times, now)
	return nil
}

// wait returns how long until the window has room for one more identify
// (zero when it has room now).
func (b *identifyBudget) wait(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prune(now)
	if len(b.times) < b.limit {
		return 0
	}
	return b.times[len(b.times)-b.limit].Add(b.window).Sub(now)
}

// used returns how many identifies the current window holds.
func (b *identifyBudget) used(now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prune(now)
	return len(b.times)
}

func (b *identifyBudget) prune(now time.Time) {
	i := 0
	for i < len(b.times) && now.Sub(b.times[i]) >= b.window {
		i++
	}
	b.times = b.times[i:]
}
