package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestReloadTouchesOnlyWhatChanged(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	e.install("behave", "behave")
	web := freeAddr(t)
	base := httpPlatform("web", web, "")
	e.writeConfig(base + `
platform "keep"   { plugin = "behave" }
platform "change" { plugin = "behave" }
platform "remove" { plugin = "behave" }
`)
	h := e.start()
	webBefore := e.waitPlatform("web", 20*time.Second, inState("running"))
	keepBefore := e.waitPlatform("keep", 20*time.Second, inState("running"))
	changeBefore := e.waitPlatform("change", 20*time.Second, inState("running"))
	e.waitPlatform("remove", 20*time.Second, inState("running"))

	// A keep-alive connection to the HTTP platform must survive the reload.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	var conns []string
	var mu sync.Mutex
	ask := func(text string) {
		t.Helper()
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			mu.Lock()
			conns = append(conns, info.Conn.LocalAddr().String())
			mu.Unlock()
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace),
			http.MethodPost, "http://"+web+"/v1/messages", strings.NewReader(`{"session":"s","text":"`+text+`"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", text, resp.StatusCode)
		}
	}
	ask("before")

	e.writeConfig(base + `
platform "keep"   { plugin = "behave" }
platform "change" {
  plugin = "behave"
  config { fatal_code = "changed" }
}
platform "added"  { plugin = "behave" }
`)
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.waitPlatform("added", 20*time.Second, inState("running"))
	changed := e.waitPlatform("change", 20*time.Second, func(p platformStatus) bool {
		return p.State == "running" && p.PID != changeBefore.PID
	})
	eventually(t, 10*time.Second, "the removed platform to go", func() bool {
		st, _ := e.status()
		_, found := st.platform("remove")
		return !found
	})
	st, _ := e.status()
	if p, _ := st.platform("web"); p.PID != webBefore.PID || p.State != "running" {
		t.Fatalf("web was restarted by an unrelated reload: %+v, was pid %d", p, webBefore.PID)
	}
	if p, _ := st.platform("keep"); p.PID != keepBefore.PID {
		t.Fatalf("keep was restarted: pid %d, was %d", p.PID, keepBefore.PID)
	}
	if changed.PID == changeBefore.PID {
		t.Fatal("changed platform kept its process")
	}
	ask("after")
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != 2 || conns[0] != conns[1] {
		t.Fatalf("the HTTP connection did not survive the reload: %v", conns)
	}
}

func TestInvalidReloadKeepsTheOldConfig(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(httpPlatform("web", web, ""))
	h := e.start()
	before := e.waitPlatform("web", 20*time.Second, inState("running"))

	e.writeConfig(httpPlatform("web", web, "") + "\nplatform \"broken\" {\n  plugn = \"x\"\n}\n")
	out, stderr, code := e.gw("reload")
	if code != 0 || !strings.Contains(out, fmt.Sprint(h.cmd.Process.Pid)) {
		t.Fatalf("gateway reload: exit %d %s%s", code, out, stderr)
	}
	var st status
	eventually(t, 10*time.Second, "the reload error in /v1/status", func() bool {
		st, _ = e.status()
		return st.ReloadError != ""
	})
	if !strings.Contains(st.ReloadError, "config.hcl:") || !strings.Contains(st.ReloadError, "plugn") {
		t.Fatalf("reload_error = %q, want the diagnostic with its position", st.ReloadError)
	}
	if p, _ := st.platform("web"); p.PID != before.PID || len(st.Platforms) != 1 {
		t.Fatalf("an invalid reload changed the platforms: %+v", st.Platforms)
	}
	if code, body := post(t, web, `{"session":"a","text":"still"}`); code != 200 || body["reply"] != "echo: still" {
		t.Fatalf("%d %v", code, body)
	}
	if !strings.Contains(h.log.String(), "reload failed; still running the previous config") {
		t.Fatal("the failed reload was not logged")
	}
}

func TestDropInBinaries(t *testing.T) {
	e := newEnv(t)
	e.install("behave", "other")
	e.writeConfig(`
platform "late"  { plugin = "late" }
platform "other" { plugin = "other" }
`)
	e.start()
	e.waitPlatform("late", 20*time.Second, inState("missing"))
	other := e.waitPlatform("other", 20*time.Second, inState("running"))

	dropped := time.Now()
	e.install("behave", "late") // write to a temp name, then rename: atomic
	late := e.waitPlatform("late", 2*time.Second, inState("running"))
	t.Logf("dropped binary to running: %s", time.Since(dropped).Round(time.Millisecond))

	// Replacing one binary restarts only the platform that runs it.
	e.install("behave", "late")
	e.waitPlatform("late", 5*time.Second, func(p platformStatus) bool { return p.State == "running" && p.PID != late.PID })
	st, _ := e.status()
	if p, _ := st.platform("other"); p.PID != other.PID {
		t.Fatalf("replacing late's binary restarted other: pid %d, was %d", p.PID, other.PID)
	}
}

func TestPluginSecurityRefusals(t *testing.T) {
	e := newEnv(t)
	e.install("behave", "open")
	e.install("behave", "good")
	sum := sha256.Sum256(mustRead(t, bins["behave"]))
	if err := os.Chmod(filepath.Join(e.pluginDir, "gateway-plugin-open"), 0o777); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(e.dir, "outside")
	if err := os.WriteFile(outside, mustRead(t, bins["behave"]), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(e.pluginDir, "gateway-plugin-link")); err != nil {
		t.Fatal(err)
	}
	e.writeConfig(fmt.Sprintf(`
platform "open" { plugin = "open" }
platform "link" { plugin = "link" }
platform "sum-bad" {
  plugin = "good"
  sha256 = "%s"
}
platform "sum-good" {
  plugin = "good"
  sha256 = "%s"
}
`, strings.Repeat("ab", 32), hex.EncodeToString(sum[:])))
	e.start()
	open := e.waitPlatform("open", 20*time.Second, inState("failed"))
	if !strings.Contains(open.Error, "writable by group or others") {
		t.Errorf("open: %q", open.Error)
	}
	link := e.waitPlatform("link", 20*time.Second, inState("failed"))
	if !strings.Contains(link.Error, "outside plugin_dir") {
		t.Errorf("link: %q", link.Error)
	}
	bad := e.waitPlatform("sum-bad", 20*time.Second, inState("failed"))
	if !strings.Contains(bad.Error, "does not match its sha256") {
		t.Errorf("sum-bad: %q", bad.Error)
	}
	e.waitPlatform("sum-good", 20*time.Second, inState("running"))

	// Fixing the permissions is a binary change: the platform starts.
	if err := os.Chmod(filepath.Join(e.pluginDir, "gateway-plugin-open"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.waitPlatform("open", 5*time.Second, inState("running"))
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSecretsNeverAppearInAnyOutput(t *testing.T) {
	const apiKey, pluginSecret, webToken = "sk-APIKEY-7f3a9c", "PLUGINSECRET-51b2", "WEBTOKEN-c0ffee"
	e := newEnv(t)
	e.install("behave", "behave")
	e.install("http", "http")
	web := freeAddr(t)
	e.logLevel = "trace"
	body := fmt.Sprintf(`
provider "openai" {
  type     = "openai"
  base_url = "http://127.0.0.1:9/v1"
  api_key  = %q
}
platform "b" {
  plugin = "behave"
  config {
    secret = %q
    TYPO
  }
}
`, apiKey, pluginSecret) + httpPlatform("web", web, fmt.Sprintf("auth_token = %q", webToken))
	e.writeConfig(strings.Replace(body, "TYPO", "tpyo = 1", 1))

	var outputs []string
	out, stderr, _ := e.gw("validate")
	outputs = append(outputs, out, stderr)
	if !strings.Contains(stderr, "tpyo") {
		t.Fatalf("validate did not report the typo:\n%s", stderr)
	}
	// Now a valid config with the same secrets, run for real.
	e.writeConfig(strings.Replace(body, "TYPO", "", 1))
	h := e.start()
	e.waitPlatform("b", 20*time.Second, inState("running"))
	e.waitPlatform("web", 20*time.Second, inState("running"))
	post(t, web, `{"session":"s","text":"/model openai/gpt-x"}`, "Authorization", "Bearer "+webToken)
	post(t, web, `{"session":"s","text":"hello"}`, "Authorization", "Bearer "+webToken)
	for _, args := range [][]string{{"status"}, {"status", "-json"}, {"validate"}, {"plugins"}, {"service-unit"}} {
		out, stderr, _ := e.gw(args...)
		outputs = append(outputs, out, stderr)
	}
	for _, path := range []string{"/v1/status", "/metrics", "/readyz"} {
		resp, err := http.Get("http://" + e.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		outputs = append(outputs, string(b))
	}
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	h.waitExit(20 * time.Second)
	outputs = append(outputs, h.log.String())
	for i, o := range outputs {
		for _, secret := range []string{apiKey, pluginSecret, webToken} {
			if strings.Contains(o, secret) {
				t.Errorf("output %d contains secret %q:\n%s", i, secret, o)
			}
		}
	}
}

func TestGracefulShutdownLetsReplyFinish(t *testing.T) {
	ai := newFakeOpenAI(t)
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(fmt.Sprintf(`
provider "openai" {
  type     = "openai"
  base_url = %q
  api_key  = "sk-test-key"
}
agent { model = "openai/test-model" }
`, ai.URL) + httpPlatform("web", web, ""))
	h := e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))

	type result struct {
		code int
		body map[string]any
	}
	done := make(chan result, 1)
	go func() {
		code, body := post(t, web, `{"session":"g","text":"slow 1500"}`)
		done <- result{code, body}
	}()
	eventually(t, 10*time.Second, "the request to reach the provider", func() bool { return ai.Served() == 1 })
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.code != 200 || r.body["reply"] != "turns=1 last=slow 1500" {
		t.Fatalf("in-flight reply during shutdown: %d %v", r.code, r.body)
	}
	if code := h.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if n := ai.OpenConns(); n != 0 {
		t.Fatalf("%d connections to the provider left open after shutdown", n)
	}
}

func TestSystemdNotify(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	e.writeConfig(httpPlatform("web", freeAddr(t), ""))
	sock := filepath.Join(e.dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var mu sync.Mutex
	var got []string
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, string(buf[:n]))
			mu.Unlock()
		}
	}()
	seen := func(prefix string, after int) int {
		mu.Lock()
		defer mu.Unlock()
		for i := after; i < len(got); i++ {
			if strings.HasPrefix(got[i], prefix) {
				return i
			}
		}
		return -1
	}
	h := e.startWithEnv([]string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000"})
	var ready int
	eventually(t, 20*time.Second, "READY=1", func() bool { ready = seen("READY=1", 0); return ready >= 0 })
	st, _ := e.status()
	if p, _ := st.platform("web"); p.State != "running" {
		t.Fatalf("READY=1 before the platform was running: %+v", p)
	}
	eventually(t, 5*time.Second, "WATCHDOG=1", func() bool { return seen("WATCHDOG=1", 0) >= 0 })
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var reloading int
	eventually(t, 10*time.Second, "RELOADING=1", func() bool { reloading = seen("RELOADING=1", ready+1); return reloading >= 0 })
	if !strings.Contains(got[reloading], "MONOTONIC_USEC=") {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", got[reloading])
	}
	eventually(t, 10*time.Second, "READY=1 after the reload", func() bool { return seen("READY=1", reloading+1) >= 0 })
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	h.waitExit(20 * time.Second)
	if seen("STOPPING=1", 0) < 0 {
		t.Fatalf("no STOPPING=1; got %q", got)
	}
}

func TestServiceUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is missing: `make test-deps` installs it (apt-get install -y systemd)")
	}
	e := newEnv(t)
	// Paths with a space, "%" (a systemd specifier) and "$" (a variable in
	// ExecStart) must reach systemd as they are.
	weird := filepath.Join(e.dir, "a b%c$d")
	if err := os.Mkdir(weird, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(weird, "gate way%x")
	if err := os.Symlink(bins["gateway"], exe); err != nil {
		t.Fatal(err)
	}
	e.Config = filepath.Join(weird, "config.hcl")
	e.writeConfig("")
	verify := func(name, unit string) {
		t.Helper()
		path := filepath.Join(e.dir, name)
		if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil {
			t.Fatalf("systemd-analyze verify: %v\n%s\n%s", err, b, unit)
		}
	}

	// DynamicUser=yes can only own a state_dir under /var/lib: said so.
	if stdout, stderr, code := e.gw("service-unit", "-exe", exe); code != 1 || !strings.Contains(stderr, "/var/lib/") || !strings.Contains(stderr, "-user") {
		t.Fatalf("service-unit with state_dir outside /var/lib: exit %d, want 1 explaining why:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	out, stderr, code := e.gw("service-unit", "-exe", exe, "-user", "gateway")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	esc := strings.NewReplacer("%", "%%", "$", "$$")
	for _, want := range []string{
		"Type=notify", `ExecStart="` + strings.ReplaceAll(exe, "%", "%%") + `" run -config "` + esc.Replace(e.Config) + `"`,
		"WorkingDirectory=" + strings.ReplaceAll(weird, "%", "%%"),
		"User=gateway", "Group=gateway", `ReadWritePaths="` + esc.Replace(filepath.Join(weird, "state")) + `"`,
		"ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "WatchdogSec=", "TimeoutStopSec=20s",
		"KillMode=mixed", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
		"SystemCallFilter=@system-service", "EnvironmentFile=-/etc/gateway/gateway.env", "CapabilityBoundingSet=\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("unit lacks %q:\n%s", want, out)
		}
	}
	verify("gateway-user.service", out)

	// The default: a dynamic user owning only its state and runtime folders.
	if err := os.WriteFile(e.Config, []byte("gateway {\n  state_dir = \"/var/lib/gateway-e2e\"\n  admin = \"/run/gateway-e2e/admin.sock\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = e.gw("service-unit", "-exe", exe)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"DynamicUser=yes", `StateDirectory="gateway-e2e"`, `RuntimeDirectory="gateway-e2e"`, "SystemCallFilter=@system-service"} {
		if !strings.Contains(out, want) {
			t.Errorf("unit lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "User=gateway") || strings.Contains(out, "ReadWritePaths") {
		t.Errorf("a DynamicUser unit names a fixed user or extra writable paths:\n%s", out)
	}
	verify("gateway.service", out)
	sec, err := exec.Command(analyze, "security", "--offline=true", filepath.Join(e.dir, "gateway.service")).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, sec)
	}
	m := regexp.MustCompile(`Overall exposure level for gateway.service: ([0-9.]+) (\w+)`).FindSubmatch(sec)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", sec)
	}
	t.Logf("systemd-analyze security: exposure %s %s", m[1], m[2])
	if rating := string(m[2]); rating != "OK" && rating != "SAFE" && rating != "PERFECT" {
		t.Fatalf("systemd-analyze security rates the unit %s %s, want OK or better:\n%s", m[1], rating, sec)
	}
}

func TestReloadChangesLogLevelOfHostAndPlugins(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.logLevel = "info"
	e.writeConfig(httpPlatform("web", web, ""))
	h := e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	post(t, web, `{"session":"quiet","text":"one"}`)
	if strings.Contains(h.log.String(), "message received") {
		t.Fatal("a debug line was logged at info level")
	}
	e.logLevel = "debug"
	e.writeConfig(httpPlatform("web", web, ""))
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the reload", func() bool { return strings.Contains(h.log.String(), "configuration reloaded") })
	st, _ := e.status()
	before, _ := st.platform("web")
	post(t, web, `{"session":"loud","text":"two"}`)
	eventually(t, 5*time.Second, "the plugin's debug line", func() bool {
		for _, line := range strings.Split(h.log.String(), "\n") {
			if strings.Contains(line, "plugin.web") && strings.Contains(line, "message received") && strings.Contains(line, "session=loud") {
				return true
			}
		}
		return false
	})
	st, _ = e.status()
	if p, _ := st.platform("web"); p.PID != before.PID {
		t.Fatal("changing the log level restarted the plugin")
	}
}
