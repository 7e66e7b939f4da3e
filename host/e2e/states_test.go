package e2e

import (
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Stop, fatal, crash and reload driven at once: every state /v1/status
// shows keeps the state machine's rules, and the host (which checks every
// transition it makes) logs no illegal one.
func TestStateSequencesUnderConcurrentStopFatalCrashReload(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	e.install("behave", "behave")
	web := freeAddr(t)
	config := func(gen int) string {
		return fmt.Sprintf(`
platform "crashy" {
  plugin = "behave"
  config {
    crash_after = "%dms"
  }
  restart {
    initial_backoff = "50ms"
    max_backoff     = "100ms"
    max_failures    = 1000
  }
}
platform "fatal" {
  plugin = "behave"
  config {
    fatal_after = "%dms"
  }
}
platform "web" {
  plugin = "http"
  config {
    listen  = %q
    timeout = "%ds"
  }
  restart {
    initial_backoff = "50ms"
  }
}
`, 150+gen%3*10, 100+gen%2*10, web, 10+gen%2)
	}
	e.writeConfig(config(0))
	h := e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))

	type seen struct {
		state    string
		err      string
		pid      int
		restarts int
	}
	var mu sync.Mutex
	seqs := map[string][]seen{}
	stopPoll := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stopPoll:
				return
			default:
			}
			st, ok := e.status()
			if !ok {
				continue
			}
			mu.Lock()
			for _, p := range st.Platforms {
				s := seen{string(p.State), p.Error, p.PID, p.Restarts}
				if q := seqs[p.Name]; len(q) == 0 || q[len(q)-1] != s {
					seqs[p.Name] = append(q, s)
				}
			}
			mu.Unlock()
		}
	}()

	// Crashes and a fatal error first, then reloads that replace every
	// platform (one with its binary replaced too) while they keep crashing.
	e.waitPlatform("crashy", 60*time.Second, func(p platformStatus) bool { return p.Restarts >= 2 })
	e.waitPlatform("fatal", 60*time.Second, inState("failed"))
	for gen := 1; gen <= 5; gen++ {
		e.writeConfig(config(gen))
		if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if gen == 2 {
			e.install("behave", "behave") // a replaced binary: Restart
		}
		time.Sleep(time.Second)
	}
	e.waitPlatform("web", 60*time.Second, inState("running"))
	close(stopPoll)
	<-polled
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := h.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if strings.Contains(h.log.String(), "illegal state transition") {
		t.Fatalf("the host made an illegal state transition")
	}
	mu.Lock()
	defer mu.Unlock()
	for name, q := range seqs {
		for i, s := range q {
			switch s.state {
			case "backoff", "failed":
				if s.err == "" {
					t.Errorf("%s: %s without an error at step %d: %+v", name, s.state, i, q)
				}
			case "running", "degraded":
				if s.pid == 0 {
					t.Errorf("%s: %s without a plugin process at step %d: %+v", name, s.state, i, q)
				}
			case "starting", "missing", "stopped", "disabled":
			default:
				t.Errorf("%s: unknown state %q", name, s.state)
			}
			if i > 0 && s.restarts < q[i-1].restarts {
				t.Errorf("%s: restarts went down at step %d: %+v", name, i, q)
			}
		}
		t.Logf("%s: %d states seen", name, len(q))
	}
	if len(seqs["crashy"]) < 4 || len(seqs["fatal"]) < 2 {
		t.Fatalf("too few states seen to mean anything: %v", seqs)
	}
}
