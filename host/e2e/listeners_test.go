package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fdCount is how many file descriptors process pid has open.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("reading the descriptors of pid %d: %v", pid, err)
	}
	return len(fds)
}

// childPIDs returns the children of process pid.
func childPIDs(pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, task := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// flood opens n connections to addr: every other one sends the headers of
// a POST and stalls before its body, the rest stay idle. They are closed at
// the end of the test, or by the returned func.
func flood(t *testing.T, addr string, n int) (stop func()) {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d to %s: %v", i, addr, err)
		}
		if i%2 == 0 {
			_, _ = io.WriteString(c, "POST /v1/messages HTTP/1.1\r\nHost: "+addr+
				"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
		}
		conns = append(conns, c)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			for _, c := range conns {
				c.Close()
			}
		}
	}
	t.Cleanup(stop)
	return stop
}

// Floods of idle and stalled connections stay within each listener's cap,
// so the host keeps the descriptors it needs to restart a plugin, and the
// plugin keeps its own. The gateway runs with a low descriptor limit (256)
// so that a few hundred connections would exhaust it without the caps.
func TestConnectionFloodsCannotExhaustTheHost(t *testing.T) {
	const adminCap, webCap, n = 16, 32, 200
	e := newEnv(t)
	e.install("http", "http")
	e.nofile = 256
	e.gatewayExtra = fmt.Sprintf("admin_max_connections = %d", adminCap)
	web := freeAddr(t)
	e.writeConfig(httpPlatform("web", web, fmt.Sprintf("max_connections = %d", webCap)))
	h := e.start()
	before := e.waitPlatform("web", 30*time.Second, inState("running"))
	hostPID := h.cmd.Process.Pid
	hostBase, pluginBase := fdCount(t, hostPID), fdCount(t, before.PID)

	stopAdmin := flood(t, e.admin, n)
	stopWeb := flood(t, web, n)
	// Each listener takes connections up to its cap; the rest wait in the
	// kernel's accept queue, costing the processes nothing.
	// (A connection of the test's own, kept alive, may hold a slot.)
	eventually(t, 10*time.Second, "both listeners to reach their caps", func() bool {
		return fdCount(t, hostPID) >= hostBase+adminCap-2 && fdCount(t, before.PID) >= pluginBase+webCap-2
	})
	t.Logf("descriptors under the flood: host %d (%d before), plugin %d (%d before)",
		fdCount(t, hostPID), hostBase, fdCount(t, before.PID), pluginBase)
	const slack = 12 // descriptors the processes open for themselves meanwhile
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if got := fdCount(t, hostPID); got > hostBase+adminCap+slack {
			t.Fatalf("the host holds %d descriptors under a flood of %d admin connections (cap %d, %d before)", got, n, adminCap, hostBase)
		}
		if got := fdCount(t, before.PID); got > pluginBase+webCap+slack {
			t.Fatalf("the plugin holds %d descriptors under a flood of %d connections (cap %d, %d before)", got, n, webCap, pluginBase)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The host can still start a plugin while its admin endpoint is flooded.
	if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a new plugin process during the flood", func() bool {
		for _, pid := range childPIDs(hostPID) {
			if pid != before.PID && processAlive(pid) {
				return true
			}
		}
		return false
	})
	stopAdmin()
	stopWeb()
	after := e.waitPlatform("web", 30*time.Second, func(p platformStatus) bool {
		return p.State == "running" && p.PID != before.PID
	})
	if after.Fatal {
		t.Fatalf("platform = %+v", after)
	}
	if code, body := post(t, web, `{"session":"s","text":"after the flood"}`); code != 200 || body["reply"] != "echo: after the flood" {
		t.Fatalf("after the flood: %d %v", code, body)
	}
}

// request sends method url with host as the Host header and header pairs,
// as a browser (or a page's script) would.
func request(t *testing.T, method, url, host, body string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// A web page a local user visits cannot drive the loopback listeners: a
// text/plain POST (no CORS preflight) is refused, a cross-site POST is
// refused, and with DNS rebinding (the page's own name resolving to
// 127.0.0.1) neither the HTTP API nor the admin endpoint answers. Same-origin
// pages and listed origins keep working.
func TestWebPagesCannotDriveTheListeners(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(httpPlatform("web", web, `allowed_origins = ["https://app.example.com"]`))
	h := e.start()
	e.waitPlatform("web", 30*time.Second, inState("running"))
	api := "http://" + web + "/v1/messages"
	msg := `{"session":"page","text":"/model evil/spend-quota"}`
	_, webPort, _ := net.SplitHostPort(web)
	_, adminPort, _ := net.SplitHostPort(e.admin)

	for _, tc := range []struct {
		name, method, url, host, body string
		header                        []string
		want                          int
	}{
		{"text/plain form POST from another site", "POST", api, "", msg,
			[]string{"Content-Type", "text/plain", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"text/plain POST", "POST", api, "", msg, []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"JSON POST from another site", "POST", api, "", msg,
			[]string{"Content-Type", "application/json", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"JSON POST from another local port (old browser)", "POST", api, "", msg,
			[]string{"Content-Type", "application/json", "Origin", "http://localhost:3000"}, http.StatusForbidden},
		{"DNS rebinding to the HTTP API", "POST", api, "rebind.attacker.example:" + webPort, msg,
			[]string{"Content-Type", "application/json", "Origin", "http://rebind.attacker.example:" + webPort, "Sec-Fetch-Site", "same-origin"}, http.StatusMisdirectedRequest},
		{"DNS rebinding to /v1/status", "GET", "http://" + e.admin + "/v1/status", "rebind.attacker.example:" + adminPort, "", nil, http.StatusMisdirectedRequest},
		{"DNS rebinding to /metrics", "GET", "http://" + e.admin + "/metrics", "rebind.attacker.example:" + adminPort, "", nil, http.StatusMisdirectedRequest},
	} {
		if resp := request(t, tc.method, tc.url, tc.host, tc.body, tc.header...); resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	if _, body := get(t, "http://"+e.admin+"/metrics"); strings.Contains(body, `gateway_messages_in_total{platform="web"}`) {
		t.Fatalf("a refused request reached the router:\n%s", body)
	}

	// The API's own page (same origin) and a listed origin keep working.
	if resp := request(t, "POST", api, "", `{"session":"same","text":"hi"}`,
		"Content-Type", "application/json", "Origin", "http://"+web, "Sec-Fetch-Site", "same-origin"); resp.StatusCode != 200 {
		t.Errorf("same-origin POST: %d", resp.StatusCode)
	}
	if resp := request(t, "POST", api, "localhost:"+webPort, `{"session":"same","text":"hi"}`,
		"Content-Type", "application/json", "Origin", "http://localhost:"+webPort, "Sec-Fetch-Site", "same-origin"); resp.StatusCode != 200 {
		t.Errorf("same-origin POST via localhost: %d", resp.StatusCode)
	}
	pre := request(t, "OPTIONS", api, "", "", "Origin", "https://app.example.com", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "content-type")
	if pre.StatusCode != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("preflight from a listed origin: %d %v", pre.StatusCode, pre.Header)
	}
	if pre := request(t, "OPTIONS", api, "", "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST"); pre.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from an unlisted origin was allowed: %v", pre.Header)
	}
	listed := request(t, "POST", api, "", `{"session":"app","text":"hi"}`,
		"Content-Type", "application/json", "Origin", "https://app.example.com", "Sec-Fetch-Site", "cross-site")
	if listed.StatusCode != 200 || listed.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("POST from a listed origin: %d %v", listed.StatusCode, listed.Header)
	}
	if code, _ := get(t, "http://"+e.admin+"/v1/status"); code != 200 {
		t.Errorf("/v1/status by IP: %d", code)
	}
	if resp := request(t, "GET", "http://"+e.admin+"/v1/status", "localhost:"+adminPort, ""); resp.StatusCode != 200 {
		t.Errorf("/v1/status via localhost: %d", resp.StatusCode)
	}
	// Who may talk to which listener is in the log.
	for _, want := range []string{`admin endpoint listening`, `open_to="anyone on this machine (loopback, no authentication)"`,
		`open_to="anyone on this machine (loopback, no auth_token)"`} {
		if !strings.Contains(h.log.String(), want) {
			t.Errorf("the log lacks %s", want)
		}
	}
}

// A listener reachable from other machines without a token is refused by
// validate and run unless the config says so explicitly: an env var typo
// must not open the gateway to the network.
func TestOpenListenersWithoutTokenAreRefused(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	_, port, _ := net.SplitHostPort(freeAddr(t))
	e.writeConfig(httpPlatform("web", "0.0.0.0:"+port, `auth_token = env("WEB_TOKEN_TYPO", "")`))
	_, stderr, code := e.gw("validate")
	if code != 1 || !strings.Contains(stderr, "auth_token is empty") || !strings.Contains(stderr, "allow_unauthenticated = true") {
		t.Errorf("validate: exit %d, want 1 naming the open listener:\n%s", code, stderr)
	}
	e.start()
	p := e.waitPlatform("web", 30*time.Second, inState("failed"))
	if !p.Fatal || !strings.Contains(p.Error, "reachable from other machines") {
		t.Errorf("platform = %+v, want failed (fatal) naming the open listener", p)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
		c.Close()
		t.Error("the refused listener is open")
	}

	e2 := newEnv(t)
	e2.admin = "0.0.0.0:" + port
	e2.writeConfig("")
	for _, cmd := range []string{"validate", "run"} {
		_, stderr, code := e2.gw(cmd)
		if code != 1 || !strings.Contains(stderr, "Admin endpoint open to the network") {
			t.Errorf("%s with admin on 0.0.0.0: exit %d, want 1:\n%s", cmd, code, stderr)
		}
	}
}
