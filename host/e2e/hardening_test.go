package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lineOf returns the 1-based line of the first line of the config file
// holding s.
func (e *env) lineOf(s string) int {
	e.t.Helper()
	b, err := os.ReadFile(e.Config)
	if err != nil {
		e.t.Fatal(err)
	}
	for i, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, s) {
			return i + 1
		}
	}
	e.t.Fatalf("%q is not in the config", s)
	return 0
}

// postRaw posts body to the HTTP platform and returns the status and the
// exact response body.
func postRaw(t *testing.T, addr, body string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Post("http://"+addr+"/v1/messages", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A typo in a running platform's config block, reloaded, changes nothing:
// the platform keeps its process (and port), and the reload error shows
// the typo at its position in /v1/status and `gateway status`.
func TestReloadWithPluginSchemaErrorKeepsThePlatform(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(httpPlatform("web", web, `timeout = "10s"`))
	h := e.start()
	before := e.waitPlatform("web", 20*time.Second, inState("running"))

	e.writeConfig(httpPlatform("web", web, `timeuot = "10s"`))
	line := e.lineOf("timeuot")
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var st status
	eventually(t, 20*time.Second, "the reload error in /v1/status", func() bool {
		st, _ = e.status()
		return st.ReloadError != ""
	})
	want := fmt.Sprintf(`config.hcl:%d:5: Unsupported argument: The plugin "http" has no setting named "timeuot". Did you mean "timeout"?`, line)
	if !strings.Contains(st.ReloadError, want) {
		t.Fatalf("reload_error = %q, want it to contain %q", st.ReloadError, want)
	}
	if p, _ := st.platform("web"); p.PID != before.PID || p.State != "running" {
		t.Fatalf("the schema error took the platform down: %+v, was pid %d", p, before.PID)
	}
	if code, body := post(t, web, `{"session":"a","text":"still here"}`); code != 200 || body["reply"] != "echo: still here" {
		t.Fatalf("after the refused reload: %d %v", code, body)
	}
	out, _, code := e.gw("status")
	if code != 0 || !strings.Contains(out, want) {
		t.Fatalf("gateway status (exit %d) does not show the reload error:\n%s", code, out)
	}
	if !processAlive(before.PID) {
		t.Fatal("the platform's plugin process is gone")
	}

	// Fixed, the next reload applies: the error clears and the changed
	// platform restarts with the new settings.
	e.writeConfig(httpPlatform("web", web, `timeout = "20s"`))
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.waitPlatform("web", 20*time.Second, func(p platformStatus) bool { return p.State == "running" && p.PID != before.PID })
	if st, _ := e.status(); st.ReloadError != "" {
		t.Fatalf("reload_error = %q after a good reload", st.ReloadError)
	}
}

// A chat command's answer is a normal reply, also when it says no: HTTP
// 200 with the notice as the reply, not 502 "the agent could not reply".
func TestCommandAnswerIsAReply(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(httpPlatform("web", web, ""))
	e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	code, body := postRaw(t, web, `{"session":"a","text":"/model nonsense/foo"}`)
	if want := `{"session":"a","reply":"no provider \"nonsense\" is configured (providers: echo)"}` + "\n"; code != 200 || body != want {
		t.Fatalf("/model nonsense/foo = %d %q, want 200 %q", code, body, want)
	}
}

// A 40,000-character session is refused at the edge with the limit named;
// nothing of it reaches the log, and other sessions' turns go on.
func TestHugeSessionIsRefusedAtTheEdge(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(httpPlatform("web", web, ""))
	h := e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))

	huge := strings.Repeat("s", 40000)
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for i := range 5 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			code, body := postRaw(t, web, `{"session":"`+huge+`","text":"hi"}`)
			if want := `{"error":"\"session\" is 40000 bytes long; ids are at most 256 bytes"}` + "\n"; code != 400 || body != want {
				errs <- fmt.Sprintf("huge session: %d %q, want 400 %q", code, body, want)
			}
		}()
		go func() {
			defer wg.Done()
			code, body := postRaw(t, web, fmt.Sprintf(`{"session":"b","text":"turn %d"}`, i))
			if code != 200 || !strings.Contains(body, "echo: turn") {
				errs <- fmt.Sprintf("session b: %d %q", code, body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	code, body := post(t, web, `{"session":"b","text":"/status"}`)
	if code != 200 || !strings.Contains(fmt.Sprint(body["reply"]), "Messages: 10") {
		t.Fatalf("/status of b = %d %v, want its 10 messages", code, body)
	}
	for _, line := range bytes.Split([]byte(h.log.String()), []byte("\n")) {
		if len(line) > 2048 {
			t.Fatalf("a log line of %d bytes: %.200s…", len(line), line)
		}
	}
}
