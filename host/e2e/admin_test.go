package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestReadyzAndMetrics(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(httpPlatform("web", web, "") + `
platform "later" { plugin = "later" }
platform "off" {
  plugin  = "http"
  enabled = false
}
`)
	e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	e.waitPlatform("off", 20*time.Second, inState("disabled"))
	code, body := get(t, "http://"+e.admin+"/readyz")
	if code != 503 || !strings.Contains(body, "later is missing") {
		t.Fatalf("readyz with a missing platform: %d %s", code, body)
	}
	if code, _ := get(t, "http://"+e.admin+"/healthz"); code != 200 {
		t.Fatalf("healthz = %d", code)
	}
	e.install("behave", "later")
	e.waitPlatform("later", 5*time.Second, inState("running"))
	if code, body := get(t, "http://"+e.admin+"/readyz"); code != 200 {
		t.Fatalf("readyz with every enabled platform running: %d %s", code, body)
	}

	post(t, web, `{"session":"m","text":"count me"}`)
	// The turn is counted just after its reply is sent: poll.
	var metrics string
	eventually(t, 5*time.Second, "the reply to be counted", func() bool {
		_, metrics = get(t, "http://"+e.admin+"/metrics")
		return strings.Contains(metrics, `gateway_replies_total{platform="web",result="ok"} 1`)
	})
	for _, want := range []string{
		`gateway_messages_in_total{platform="web"} 1`,
		`gateway_replies_total{platform="web",result="ok"} 1`,
		`gateway_reply_seconds_count{platform="web"} 1`,
		`gateway_platform_state{platform="web",state="running"} 1`,
		`gateway_platform_state{platform="off",state="disabled"} 1`,
		`gateway_platform_restarts{platform="web"} 0`,
		"go_goroutines",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !strings.Contains(metrics, "gateway_agent_cache_agents 1") {
		t.Errorf("/metrics has no cache metrics:\n%s", metrics)
	}
}

func TestFatalPlatformRetriedOnlyWhenItsConfigChanges(t *testing.T) {
	e := newEnv(t)
	e.install("behave", "behave")
	starts := filepath.Join(e.dir, "starts")
	block := func(code string) string {
		return fmt.Sprintf(`
platform "bad" {
  plugin = "behave"
  config {
    starts_file = %q
    fatal_after = "10ms"
    fatal_code  = %q
  }
}
`, starts, code)
	}
	e.writeConfig(block("one"))
	h := e.start()
	e.waitPlatform("bad", 20*time.Second, inState("failed"))
	count := func() int {
		b, _ := os.ReadFile(starts)
		return strings.Count(string(b), "\n")
	}
	// An unchanged config on reload does not restart a fatal platform.
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the reload", func() bool { return strings.Contains(h.log.String(), "configuration reloaded") })
	if n := count(); n != 1 {
		t.Fatalf("unchanged reload restarted the fatal platform: %d starts", n)
	}
	// A changed config does.
	e.writeConfig(block("two"))
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a second start", func() bool { return count() == 2 })
	e.waitPlatform("bad", 10*time.Second, inState("failed"))
}
