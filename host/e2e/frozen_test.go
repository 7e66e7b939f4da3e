package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// frozenHTTPPlatform is an HTTP platform whose liveness pings are fast, so
// a frozen plugin is noticed in well under a second.
func frozenHTTPPlatform(name, addr, extra string) string {
	return fmt.Sprintf(`
platform %q {
  plugin = "http"
  config {
    listen = %q
    %s
  }
  restart {
    initial_backoff   = "100ms"
    max_backoff       = "1s"
    liveness_interval = "200ms"
    liveness_timeout  = "300ms"
    liveness_failures = 3
  }
}
`, name, addr, extra)
}

// sigstop freezes pid and thaws it at the end of the test (a stopped
// process ignores SIGTERM, and would outlive the test).
func sigstop(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
}

// A frozen plugin is noticed (degraded, with the reason), killed and
// restarted; the other platform is not touched, and requests work again.
func TestFrozenPluginIsNoticedAndRestarted(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	web, other := freeAddr(t), freeAddr(t)
	e.writeConfig(frozenHTTPPlatform("web", web, "") + frozenHTTPPlatform("other", other, ""))
	e.start()
	first := e.waitPlatform("web", 20*time.Second, inState("running"))
	otherSt := e.waitPlatform("other", 20*time.Second, inState("running"))

	sigstop(t, first.PID)
	frozen := time.Now()
	degraded := e.waitPlatform("web", 10*time.Second, inState("degraded"))
	noticed := time.Since(frozen)
	if !strings.Contains(degraded.Error, "liveness") || degraded.PID != first.PID {
		t.Fatalf("degraded status = %+v, want the liveness reason and the frozen pid", degraded)
	}
	again := e.waitPlatform("web", 20*time.Second, func(p platformStatus) bool {
		return p.State == "running" && p.PID != first.PID && p.PID != 0
	})
	t.Logf("frozen plugin noticed after %s, running again after %s", noticed.Round(time.Millisecond), time.Since(frozen).Round(time.Millisecond))
	if again.Restarts != 1 {
		t.Fatalf("restarts = %d, want 1", again.Restarts)
	}
	eventually(t, 5*time.Second, "the frozen plugin to be killed", func() bool { return !processAlive(first.PID) })
	if code, body := post(t, web, `{"session":"f","text":"back"}`); code != 200 || body["reply"] != "echo: back" {
		t.Fatalf("after the restart: %d %v", code, body)
	}
	st, _ := e.status()
	if p, _ := st.platform("other"); p.PID != otherSt.PID || p.Restarts != 0 || p.State != "running" {
		t.Fatalf("the other platform was disturbed: %+v", p)
	}
}

// With a plugin frozen and liveness too slow to catch it, a reload that
// changes the frozen platform does not stall the host: status answers,
// the other platform is reloaded, and SIGTERM stops the host within
// shutdown_timeout plus a few seconds.
func TestFrozenPluginDoesNotWedgeReloadOrShutdown(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	web, other := freeAddr(t), freeAddr(t)
	slow := `
  restart {
    liveness_interval = "1h"
  }
`
	block := func(name, addr, timeout string) string {
		return fmt.Sprintf("platform %q {\n  plugin = \"http\"\n  config {\n    listen = %q\n    timeout = %q\n  }\n%s}\n", name, addr, timeout, slow)
	}
	e.writeConfig(block("web", web, "10s") + block("other", other, "10s"))
	h := e.start()
	frozen := e.waitPlatform("web", 20*time.Second, inState("running"))
	e.waitPlatform("other", 20*time.Second, inState("running"))
	sigstop(t, frozen.PID)

	e.writeConfig(block("web", web, "11s") + block("other", other, "12s"))
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The other platform is restarted with its new config while the frozen
	// one is still being killed; status answers all along.
	e.waitPlatform("other", 15*time.Second, func(p platformStatus) bool { return p.State == "running" && p.Restarts == 0 })
	e.waitPlatform("web", 15*time.Second, func(p platformStatus) bool { return p.State == "running" && p.PID != frozen.PID })
	if code, body := post(t, other, `{"session":"r","text":"still here"}`); code != 200 || body["reply"] != "echo: still here" {
		t.Fatalf("other platform after reload: %d %v", code, body)
	}

	// Freeze the new web plugin too and stop the host.
	st, _ := e.status()
	p, _ := st.platform("web")
	sigstop(t, p.PID)
	start := time.Now()
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := h.waitExit(5*time.Second + 10*time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0 (a bounded, clean shutdown)", code)
	}
	t.Logf("host with a frozen plugin stopped in %s (shutdown_timeout 5s)", time.Since(start).Round(time.Millisecond))
	if processAlive(p.PID) {
		t.Fatalf("the frozen plugin %d outlived the host", p.PID)
	}
}

// A second SIGTERM during a shutdown that is waiting on a reply stops the
// host at once.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(httpPlatform("web", web, ""))
	h := e.start()
	st := e.waitPlatform("web", 20*time.Second, inState("running"))
	sigstop(t, st.PID) // its Stop call will hang: shutdown takes its time
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the host to log that it is shutting down", func() bool {
		return strings.Contains(h.log.String(), "shutting down")
	})
	if err := h.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := h.waitExit(5 * time.Second); code == 0 {
		t.Fatalf("exit code 0 after a forced stop, want non-zero")
	}
	if !strings.Contains(h.log.String(), "second signal") {
		t.Fatalf("log does not say why it stopped at once")
	}
}
