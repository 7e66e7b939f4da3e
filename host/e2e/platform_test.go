package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// httpPlatform is a config block for the HTTP platform on addr.
func httpPlatform(name, addr string, extra string) string {
	return fmt.Sprintf(`
platform %q {
  plugin = "http"
  config {
    listen = %q
    %s
  }
  restart {
    initial_backoff = "100ms"
    max_backoff     = "1s"
  }
}
`, name, addr, extra)
}

func TestHTTPPlatformEndToEnd(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(httpPlatform("web", web, `auth_token = "s3cret-token"
    max_body = 200
    timeout = "10s"`))
	e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	auth := []string{"Authorization", "Bearer s3cret-token"}

	code, body := post(t, web, `{"session":"a","text":"hi"}`, auth...)
	if code != 200 || body["reply"] != "echo: hi" || body["session"] != "a" {
		t.Fatalf("POST hi = %d %v, want 200 echo: hi", code, body)
	}

	cases := []struct {
		name   string
		body   string
		header []string
		want   int
	}{
		{"bad JSON", `{"session":`, auth, 400},
		{"empty text", `{"session":"a","text":"  "}`, auth, 400},
		{"missing session", `{"text":"hi"}`, auth, 400},
		{"no token", `{"session":"a","text":"hi"}`, nil, 401},
		{"wrong token", `{"session":"a","text":"hi"}`, []string{"Authorization", "Bearer nope"}, 401},
		{"too big", `{"session":"a","text":"` + strings.Repeat("x", 300) + `"}`, auth, 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(t, web, tc.body, tc.header...)
			if code != tc.want {
				t.Fatalf("status = %d (%v), want %d", code, body, tc.want)
			}
			if _, ok := body["error"].(string); !ok {
				t.Fatalf("error response has no error message: %v", body)
			}
		})
	}

	// Commands go the same way.
	code, body = post(t, web, `{"session":"a","text":"/help"}`, auth...)
	if code != 200 || !strings.Contains(fmt.Sprint(body["reply"]), "/new") {
		t.Fatalf("/help = %d %v", code, body)
	}
}

func TestKilledPluginComesBackAlone(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	e.install("behave", "behave")
	web := freeAddr(t)
	e.writeConfig(httpPlatform("web", web, "") + `
platform "other" {
  plugin = "behave"
}
`)
	h := e.start()
	first := e.waitPlatform("web", 20*time.Second, inState("running"))
	other := e.waitPlatform("other", 20*time.Second, inState("running"))

	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	again := e.waitPlatform("web", 5*time.Second, func(p platformStatus) bool {
		return p.State == "running" && p.PID != first.PID
	})
	if again.Restarts != 1 {
		t.Fatalf("restarts = %d, want 1", again.Restarts)
	}
	if code, body := post(t, web, `{"session":"k","text":"back"}`); code != 200 || body["reply"] != "echo: back" {
		t.Fatalf("after restart: %d %v", code, body)
	}
	st, _ := e.status()
	if p, _ := st.platform("other"); p.PID != other.PID || p.Restarts != 0 || p.State != "running" {
		t.Fatalf("the other platform was disturbed: %+v (was pid %d)", p, other.PID)
	}
	if st.PID != h.cmd.Process.Pid {
		t.Fatalf("host pid changed: %d", st.PID)
	}
}

func TestFatalPluginIsStartedOnce(t *testing.T) {
	e := newEnv(t)
	e.install("behave", "behave")
	e.install("http", "http")
	starts := filepath.Join(e.dir, "starts")
	web := freeAddr(t)
	e.writeConfig(fmt.Sprintf(`
platform "bad" {
  plugin = "behave"
  config {
    starts_file = %q
    fatal_after = "10ms"
  }
  restart {
    initial_backoff = "20ms"
    max_backoff     = "50ms"
  }
}
`, starts) + httpPlatform("web", web, ""))
	e.start()
	p := e.waitPlatform("bad", 20*time.Second, inState("failed"))
	if !p.Fatal || p.Error != "the platform rejected the token" || p.Hint != "check the token" {
		t.Fatalf("failed platform = %+v, want fatal with message and hint", p)
	}
	// With a 20 ms backoff, a restart would have happened many times over
	// in this window.
	time.Sleep(500 * time.Millisecond)
	b, err := os.ReadFile(starts)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 1 {
		t.Fatalf("fatal plugin was started %d times, want exactly 1", n)
	}
	e.waitPlatform("web", 10*time.Second, inState("running"))
	if code, _ := post(t, web, `{"session":"x","text":"still here"}`); code != 200 {
		t.Fatalf("other platform answers %d", code)
	}
	_, body := post(t, web, `{"session":"x","text":"still here"}`)
	if body["reply"] != "echo: still here" {
		t.Fatalf("reply = %v", body)
	}
}

func TestCrashLoopTripsBreakerWithGrowingBackoff(t *testing.T) {
	e := newEnv(t)
	e.install("exitnow", "exitnow")
	e.writeConfig(`
platform "loop" {
  plugin = "exitnow"
  restart {
    initial_backoff = "50ms"
    max_backoff     = "5s"
    max_failures    = 4
    failure_window  = "1m"
  }
}
`)
	h := e.start()
	p := e.waitPlatform("loop", 30*time.Second, inState("failed"))
	if p.Fatal {
		t.Fatalf("a crash loop is not a fatal error: %+v", p)
	}
	if !strings.Contains(p.Error, "crash loop") || p.Restarts != 3 {
		t.Fatalf("breaker: %+v, want crash loop after 3 restarts", p)
	}
	// Backoff grows: the log shows each delay (this config has one
	// platform, so every delay is its); they must increase.
	var delays []time.Duration
	for _, line := range strings.Split(h.log.String(), "\n") {
		if i := strings.Index(line, "backoff="); i >= 0 {
			f := strings.Fields(line[i+len("backoff="):])[0]
			d, err := time.ParseDuration(f)
			if err != nil {
				t.Fatalf("parsing %q: %v", f, err)
			}
			delays = append(delays, d)
		}
	}
	if len(delays) != 3 {
		t.Fatalf("saw %d backoff delays, want 3: %v", len(delays), delays)
	}
	for i := 1; i < len(delays); i++ {
		if delays[i] <= delays[i-1] {
			t.Fatalf("backoff did not grow: %v", delays)
		}
	}
}

func TestCrashingPluginIsRestarted(t *testing.T) {
	e := newEnv(t)
	e.install("behave", "behave")
	e.writeConfig(`
platform "flaky" {
  plugin = "behave"
  config { crash_after = "300ms" }
  restart {
    initial_backoff = "20ms"
    max_backoff     = "50ms"
    max_failures    = 100
  }
}
`)
	e.start()
	e.waitPlatform("flaky", 20*time.Second, func(p platformStatus) bool { return p.Restarts >= 2 && p.State == "running" })
}

func TestBrokenPluginsFailAloneWithClearErrors(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	e.install("nohandshake", "nohandshake")
	e.install("stdoutjunk", "stdoutjunk")
	e.install("notplugin", "notplugin")
	e.gatewayExtra = `plugin_start_timeout = "3s"` // keeps the hanging plugin's test fast, yet lets a race-built plugin start on a loaded machine
	web := freeAddr(t)
	restart := `restart {
    initial_backoff = "50ms"
    max_failures    = 2
  }`
	e.writeConfig(`
platform "hang" {
  plugin = "nohandshake"
  ` + restart + `
}
platform "junk" {
  plugin = "stdoutjunk"
  ` + restart + `
}
platform "script" {
  plugin = "notplugin"
  ` + restart + `
}
platform "absent" {
  plugin = "nothere"
}
` + httpPlatform("web", web, ""))
	e.start()

	e.waitPlatform("web", 20*time.Second, inState("running"))
	hang := e.waitPlatform("hang", 20*time.Second, inState("failed"))
	if !strings.Contains(hang.Error, "timeout") {
		t.Errorf("hanging plugin error = %q, want a timeout", hang.Error)
	}
	junk := e.waitPlatform("junk", 20*time.Second, inState("failed"))
	if !strings.Contains(junk.Error, "hello from a plugin that talks too much") {
		t.Errorf("stdout junk error = %q, want it to quote the junk", junk.Error)
	}
	script := e.waitPlatform("script", 20*time.Second, inState("failed"))
	if !strings.Contains(script.Error, "not a gateway plugin") {
		t.Errorf("non-plugin error = %q", script.Error)
	}
	absent := e.waitPlatform("absent", 5*time.Second, inState("missing"))
	if want := filepath.Join(e.pluginDir, "gateway-plugin-nothere"); !strings.Contains(absent.Error, want) {
		t.Errorf("missing error = %q, want the path %s", absent.Error, want)
	}
	if code, body := post(t, web, `{"session":"a","text":"fine"}`); code != 200 || body["reply"] != "echo: fine" {
		t.Fatalf("the healthy platform was harmed: %d %v", code, body)
	}
	// A missing binary that appears is started.
	e.install("behave", "nothere")
	e.waitPlatform("absent", 10*time.Second, inState("running"))
}

func TestNoPluginOutlivesAKilledHost(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	e.install("behave", "behave")
	e.writeConfig(httpPlatform("web", freeAddr(t), "") + `
platform "b1" { plugin = "behave" }
platform "b2" { plugin = "behave" }
`)
	h := e.start()
	var pids []int
	for _, name := range []string{"web", "b1", "b2"} {
		pids = append(pids, e.waitPlatform(name, 20*time.Second, inState("running")).PID)
	}
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	h.waitExit(5 * time.Second)
	for _, pid := range pids {
		eventually(t, 5*time.Second, fmt.Sprintf("plugin pid %d to exit", pid), func() bool { return !processAlive(pid) })
	}
}

func TestValidateReportsTypoAtItsLine(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	e.writeConfig(`
platform "web" {
  plugin = "http"
  config {
    listne = "127.0.0.1:9"
  }
}
`)
	_, stderr, code := e.gw("validate")
	if code != 1 {
		t.Fatalf("validate exit = %d, want 1; stderr:\n%s", code, stderr)
	}
	// The gateway block written by writeConfig is 8 lines; the typo is on line 13.
	want := "config.hcl:13:5:"
	if !strings.Contains(stderr, want) || !strings.Contains(stderr, "listen") {
		t.Fatalf("validate output lacks %q with a suggestion:\n%s", want, stderr)
	}
	e.writeConfig(httpPlatform("web", "127.0.0.1:9", ""))
	if out, stderr, code := e.gw("validate"); code != 0 {
		t.Fatalf("valid config: exit %d\n%s%s", code, out, stderr)
	}
}
