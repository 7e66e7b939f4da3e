package pidlock

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestSimultaneousStart starts 8 hosts at the same instant, 20 times: exactly one must hold
// the lock and every other must exit at once naming the winner's PID, never a generic
// "race lost". Every other round the winner is SIGKILLed instead of stopped, so the next
// round races over a stale record whose PID the losers must not name.
func TestSimultaneousStart(t *testing.T) {
	const procs, rounds = 8, 20
	dir := t.TempDir()
	var slowest time.Duration
	for round := range rounds {
		barrierR, barrierW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		ps := make([]*proc, procs)
		for i := range ps {
			ps[i] = startHelper(t, "acquire", helperEnv(dir, envBarrier, "1"), barrierR)
		}
		barrierR.Close()
		for _, p := range ps {
			p.waitLine(t, "READY", 20*time.Second)
		}
		released := time.Now()
		barrierW.Close() // every helper reads EOF at the same moment

		// Each helper either holds the lock or exits; poll until all have decided.
		var winners []*proc
		pollUntil(t, 20*time.Second, "every helper to hold the lock or exit", func() bool {
			winners = winners[:0]
			for _, p := range ps {
				if _, held := p.line("HELD"); held {
					winners = append(winners, p)
				} else if !p.exited() {
					return false
				}
			}
			return true
		})
		if len(winners) != 1 {
			for _, p := range ps {
				t.Logf("pid %d stdout %q stderr %q", p.pid(), p.stdout.String(), p.stderr.String())
			}
			t.Fatalf("round %d: %d helpers hold the lock, want exactly 1", round, len(winners))
		}
		winner := winners[0]
		if elapsed := time.Since(released); elapsed > slowest {
			slowest = elapsed
		}
		want := fmt.Sprintf("gateway already running (pid %d since ", winner.pid())
		for _, p := range ps {
			if p == winner {
				continue
			}
			if code := p.wait(t, time.Second); code != exitHeld {
				t.Fatalf("round %d: loser %d exited %d, want %d\nstderr:\n%s", round, p.pid(), code, exitHeld, p.stderr.String())
			}
			if !strings.Contains(p.stderr.String(), want) {
				t.Fatalf("round %d: loser %d does not name winner %d\nstderr:\n%s", round, p.pid(), winner.pid(), p.stderr.String())
			}
		}
		if round%2 == 1 {
			winner.kill()
			winner.wait(t, 10*time.Second)
		} else {
			winner.stop(t)
		}
	}
	t.Logf("slowest round: every loser had exited %s after the barrier opened", slowest)
}
