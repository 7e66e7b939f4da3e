package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// waitUp waits until the admin endpoint answers with h's pid.
func (e *env) waitUp(h *host) {
	e.t.Helper()
	eventually(e.t, 20*time.Second, "the gateway to answer", func() bool {
		st, ok := e.status()
		return ok && st.PID == h.cmd.Process.Pid
	})
}

func TestSecondHostExitsNamingTheFirst(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	first := e.start()
	e.waitUp(first)
	second := e.start()
	if code := second.waitExit(10 * time.Second); code == 0 {
		t.Fatal("second host exited 0")
	}
	want := fmt.Sprintf("gateway already running (pid %d since ", first.cmd.Process.Pid)
	if !strings.Contains(second.log.String(), want) {
		t.Fatalf("second host said %q, want %q", second.log.String(), want)
	}
	if strings.Count(strings.TrimSpace(second.log.String()), "\n") != 0 {
		t.Fatalf("the refusal should be one line:\n%s", second.log.String())
	}
}

func TestStatusExitCodesAndTakeover(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	e.writeConfig(httpPlatform("web", freeAddr(t), ""))

	if out, _, code := e.gw("status"); code != 3 || !strings.Contains(out, "not running") {
		t.Fatalf("status before start: exit %d %q, want 3", code, out)
	}
	h := e.start()
	e.waitUp(h)
	e.waitPlatform("web", 20*time.Second, inState("running"))
	out, _, code := e.gw("status")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("pid %d", h.cmd.Process.Pid)) || !strings.Contains(out, "web") {
		t.Fatalf("status running: exit %d\n%s", code, out)
	}
	out, _, code = e.gw("status", "-json")
	var doc status
	if err := json.Unmarshal([]byte(out), &doc); code != 0 || err != nil || doc.PID != h.cmd.Process.Pid {
		t.Fatalf("status -json: exit %d, %v\n%s", code, err, out)
	}

	// SIGKILL leaves the PID file behind: status says stale (1) ...
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	h.waitExit(5 * time.Second)
	out, _, code = e.gw("status")
	if code != 1 || !strings.Contains(out, fmt.Sprint(h.cmd.Process.Pid)) {
		t.Fatalf("status after SIGKILL: exit %d %q, want 1 naming pid %d", code, out, h.cmd.Process.Pid)
	}
	// ... and the next start takes over at once, saying so.
	next := e.start()
	e.waitUp(next)
	want := fmt.Sprintf("previous gateway pid %d did not shut down cleanly; taking over", h.cmd.Process.Pid)
	if !strings.Contains(next.log.String(), want) {
		t.Fatalf("takeover log lacks %q:\n%s", want, next.log.String())
	}
}

func TestStopCommand(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	h := e.start()
	e.waitUp(h)
	out, stderr, code := e.gw("stop", "-timeout", "20s")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("stopped gateway pid %d", h.cmd.Process.Pid)) {
		t.Fatalf("stop: exit %d\n%s%s", code, out, stderr)
	}
	if code := h.waitExit(time.Second); code != 0 {
		t.Fatalf("stopped host exited %d", code)
	}
	if _, _, code := e.gw("status"); code != 3 {
		t.Fatalf("status after a clean stop = %d, want 3", code)
	}
	if out, _, code := e.gw("stop"); code != 0 || !strings.Contains(out, "not running") {
		t.Fatalf("stop when not running: exit %d %q", code, out)
	}
}

func TestRunReplaceTakesOver(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(httpPlatform("web", web, ""))
	old := e.start()
	e.waitUp(old)
	e.waitPlatform("web", 20*time.Second, inState("running"))

	repl := e.start("-replace")
	if code := old.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("replaced host exited %d", code)
	}
	e.waitUp(repl)
	e.waitPlatform("web", 20*time.Second, inState("running"))
	if code, body := post(t, web, `{"session":"r","text":"new host"}`); code != 200 || body["reply"] != "echo: new host" {
		t.Fatalf("after -replace: %d %v", code, body)
	}
	// The old host got SIGTERM, not SIGKILL: it shut down cleanly.
	if !strings.Contains(old.log.String(), "gateway stopped") {
		t.Fatalf("old host did not stop gracefully:\n%s", old.log.String())
	}
}
