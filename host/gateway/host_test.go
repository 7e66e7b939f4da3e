package gateway

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plughost/gateway/host/config"
	"github.com/plughost/gateway/host/pidlock"
	"github.com/plughost/gateway/host/supervisor"

	"github.com/plughost/gateway/shared/kit/fakekit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := fakekit.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func load(t *testing.T, dir, body string) *config.Config {
	t.Helper()
	src := fmt.Sprintf(`
gateway {
  state_dir  = %q
  plugin_dir = %q
  admin      = %q
  shutdown_timeout = "2s"
}
`, filepath.Join(dir, "state"), filepath.Join(dir, "plugins"), freeAddr(t)) + body
	cfg, diags := config.Parse([]byte(src), filepath.Join(dir, "config.hcl"))
	if diags.HasErrors() {
		t.Fatal(config.FormatDiagnostics(diags))
	}
	return cfg
}

// TestStartShutdownLeavesNothingBehind starts the whole host in-process,
// reloads it and shuts it down: no goroutine may be left (goleak), the lock
// must be free again, and a platform waiting for its binary must report
// missing meanwhile.
func TestStartShutdownLeavesNothingBehind(t *testing.T) {
	dir := t.TempDir()
	cfg := load(t, dir, `platform "later" { plugin = "later" }`)
	next := load(t, dir, `
platform "later" { plugin = "later" }
platform "off" {
  plugin  = "later"
  enabled = false
}
`)
	next.Gateway.Admin = cfg.Gateway.Admin
	h, err := Start(Options{Config: cfg, Reload: func() (*config.Config, error) { return next, nil }})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.Status().Platforms[0].State != supervisor.StateMissing {
		if time.Now().After(deadline) {
			t.Fatalf("platform state = %s, want missing", h.Status().Platforms[0].State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ok, why := h.Ready(); ok || why != "later is missing" {
		t.Fatalf("Ready() = %v %q", ok, why)
	}
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := len(h.Status().Platforms); got != 2 {
		t.Fatalf("after reload: %d platforms, want 2", got)
	}
	if !h.alive(time.Second) {
		t.Fatal("alive() = false on an idle host")
	}
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := pidlock.Probe(cfg.Gateway.StateDir)
	if err != nil || st.State != pidlock.NotRunning {
		t.Fatalf("after shutdown the lock is %v (%v), want not running", st.State, err)
	}
}

func TestStartFailureReleasesEverything(t *testing.T) {
	dir := t.TempDir()
	cfg := load(t, dir, "")
	// The admin address is taken: Start fails after the lock and the store
	// are open, and must close both.
	ln, err := net.Listen("tcp", cfg.Gateway.Admin)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Start(Options{Config: cfg}); err == nil {
		t.Fatal("Start succeeded on a taken admin address")
	}
	st, err := pidlock.Probe(cfg.Gateway.StateDir)
	if err != nil || st.State == pidlock.Running {
		t.Fatalf("a failed Start kept the lock: %v %v", st.State, err)
	}
	// The store was closed too: a new host can open it.
	ln.Close()
	h, err := Start(Options{Config: cfg})
	if err != nil {
		t.Fatalf("restart after a failed Start: %v", err)
	}
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
