package e2e

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startPipedStderr starts the gateway with stderr (and stdout) into a pipe
// nobody reads, shrunk to one page so it fills at once.
func (e *env) startPipedStderr() (*host, *os.File) {
	e.t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		e.t.Fatal(err)
	}
	const fSetPipeSz = 1031 // F_SETPIPE_SZ
	if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, w.Fd(), fSetPipeSz, 4096); errno != 0 {
		e.t.Fatalf("F_SETPIPE_SZ: %v", errno)
	}
	p, err := e.Start(bins["gateway"], w, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	w.Close()
	h := &host{Process: p, t: e.t, e: e, cmd: p.Cmd, log: &syncBuffer{}}
	e.t.Cleanup(func() {
		h.stop()
		r.Close()
	})
	return h, r
}

// With stderr a pipe nobody reads, the host still answers requests, applies
// a SIGHUP, counts the dropped lines in /metrics, and stops on SIGTERM.
func TestBlockedLogOutputNeverStallsTheHost(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	web, added := freeAddr(t), freeAddr(t)
	e.logLevel = "debug"
	e.writeConfig(httpPlatform("web", web, ""))
	h, _ := e.startPipedStderr()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	// Two log lines a request at debug: well over what the buffer holds.
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 80 {
				resp, body, err := postFull(t, web, fmt.Sprintf(`{"session":"s%d-%d","text":"hi"}`, w, i), 30*time.Second)
				if err != nil || resp.StatusCode != 200 || body["reply"] != "echo: hi" {
					errs <- fmt.Sprintf("request %d/%d with a stuck log: %v %v %v", w, i, resp, body, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Fatal(msg)
	}
	if d := e.metric("gateway_log_lines_dropped_total"); d <= 0 {
		t.Fatalf("gateway_log_lines_dropped_total = %v, want lines dropped", d)
	}
	e.writeConfig(httpPlatform("web", web, "") + httpPlatform("added", added, ""))
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.waitPlatform("added", 20*time.Second, inState("running"))
	if code, body := post(t, added, `{"session":"a","text":"after reload"}`); code != 200 || body["reply"] != "echo: after reload" {
		t.Fatalf("after reload: %d %v", code, body)
	}
	start := time.Now()
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := h.waitExit(5*time.Second + 10*time.Second)
	t.Logf("stopped in %s with a stuck log output (exit %d)", time.Since(start).Round(time.Millisecond), code)
}
