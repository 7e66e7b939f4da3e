package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bins holds the binaries TestMain built: "gateway" and one per plugin name.
var bins = map[string]string{}

// pluginSources are the plugins the tests build, by plugin name.
var pluginSources = map[string]string{
	"http":        "./plugins/http",
	"discord":     "./plugins/discord",
	"telegram":    "./plugins/telegram",
	"slack":       "./plugins/slack",
	"matrix":      "./plugins/matrix",
	"behave":      "./testdata/plugins/behave",
	"exitnow":     "./testdata/plugins/exitnow",
	"nohandshake": "./testdata/plugins/nohandshake",
	"stdoutjunk":  "./testdata/plugins/stdoutjunk",
	// httpv1 is the HTTP plugin speaking protocol 1 only, as a binary
	// built before protocol 2 does.
	"httpv1": "./plugins/http",
}

// pluginTags are the build tags of the plugins that need some.
var pluginTags = map[string]string{"httpv1": "gateway_protocol1"}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gateway-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := buildAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "building binaries for the e2e tests:", err)
		return 1
	}
	return m.Run()
}

// buildAll builds the gateway and every plugin into dir, in parallel.
func buildAll(dir string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	targets := map[string]string{"gateway": "./host/cmd/gateway"}
	for name, src := range pluginSources {
		targets[name] = src
	}
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	for name, src := range targets {
		if _, err := os.Stat(filepath.Join(root, src)); err != nil {
			continue // a plugin not written yet
		}
		out := filepath.Join(dir, name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := []string{"build", "-o", out}
			if raceEnabled {
				args = append(args, "-race")
			}
			if tags := pluginTags[name]; tags != "" {
				args = append(args, "-tags", tags)
			}
			cmd := exec.Command("go", append(args, src)...)
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("%s: %v\n%s", src, err, b))
				mu.Unlock()
				return
			}
			mu.Lock()
			bins[name] = out
			mu.Unlock()
		}()
	}
	wg.Wait()
	bins["notplugin"] = filepath.Join(root, "testdata/plugins/notplugin.sh")
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// env is one test's installation: a folder with a config file, a plugin
// dir and a state dir.
type env struct {
	t         *testing.T
	dir       string
	pluginDir string
	config    string
	admin     string
	// logLevel and gatewayExtra go into the gateway block writeConfig writes.
	logLevel     string
	gatewayExtra string
	// nofile, if set, is the file-descriptor limit `gateway run` starts with
	// (soft and hard), as `ulimit -n` sets it.
	nofile int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, pluginDir: filepath.Join(dir, "plugins"), config: filepath.Join(dir, "config.hcl"), admin: freeAddr(t)}
	if err := os.MkdirAll(e.pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return e
}

// install puts the plugin built as name into the plugin dir as
// gateway-plugin-as.
func (e *env) install(name, as string) string {
	e.t.Helper()
	src, ok := bins[name]
	if !ok {
		e.t.Fatalf("plugin %q was not built", name)
	}
	dst := filepath.Join(e.pluginDir, "gateway-plugin-"+as)
	b, err := os.ReadFile(src)
	if err != nil {
		e.t.Fatal(err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		e.t.Fatal(err)
	}
	return dst
}

// writeConfig writes the config file: a gateway block for this env, then body.
func (e *env) writeConfig(body string) {
	e.t.Helper()
	level := e.logLevel
	if level == "" {
		level = "debug"
	}
	src := fmt.Sprintf(`gateway {
  state_dir  = "state"
  plugin_dir = "plugins"
  admin      = %q
  log_level  = %q
  shutdown_timeout = "5s"
  %s
}
`, e.admin, level, e.gatewayExtra) + body
	// Atomically: a host reloading meanwhile never reads half a file.
	tmp := e.config + ".tmp"
	if err := os.WriteFile(tmp, []byte(src), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, e.config); err != nil {
		e.t.Fatal(err)
	}
}

// gw runs `gateway ARGS -config CONFIG` to completion.
func (e *env) gw(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	cmd := exec.Command(bins["gateway"], append(args, "-config", e.config)...)
	var o, s bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &s
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return o.String(), s.String(), code
}

// host is a running `gateway run`.
type host struct {
	t      *testing.T
	e      *env
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{}
	err    error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs the gateway in the background; it is stopped (SIGTERM, then
// SIGKILL) at the end of the test, and its log shown if the test failed.
func (e *env) start(extra ...string) *host {
	e.t.Helper()
	return e.startWithEnv(nil, extra...)
}

// startWithEnv is start with extra environment variables.
func (e *env) startWithEnv(environ []string, extra ...string) *host {
	e.t.Helper()
	h := &host{t: e.t, e: e, log: &syncBuffer{}, exited: make(chan struct{})}
	h.cmd = exec.Command(bins["gateway"], append([]string{"run", "-config", e.config}, extra...)...)
	if e.nofile > 0 {
		h.cmd = exec.Command("/bin/sh", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, e.nofile), h.cmd.Path}, h.cmd.Args[1:]...)...)
	}
	h.cmd.Stdout = h.log
	h.cmd.Stderr = h.log
	h.cmd.Env = append(os.Environ(), environ...)
	if err := h.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { h.err = h.cmd.Wait(); close(h.exited) }()
	e.t.Cleanup(func() {
		h.stop()
		if strings.Contains(h.log.String(), "WARNING: DATA RACE") {
			e.t.Errorf("the race detector found a data race in the gateway or a plugin")
		}
		if e.t.Failed() {
			e.t.Logf("gateway log:\n%s", h.log.String())
		}
	})
	return h
}

func (h *host) stop() {
	select {
	case <-h.exited:
		return
	default:
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(15 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.exited
	}
}

// waitExit waits for the host to exit and returns its exit code.
func (h *host) waitExit(timeout time.Duration) int {
	h.t.Helper()
	select {
	case <-h.exited:
	case <-time.After(timeout):
		h.t.Fatalf("gateway did not exit within %s; log:\n%s", timeout, h.log.String())
	}
	if ee, ok := h.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return 0
}

// status is the part of /v1/status the tests read.
type status struct {
	PID       int              `json:"pid"`
	Platforms []platformStatus `json:"platforms"`
	Cache     struct {
		Agents    int `json:"agents"`
		MaxAgents int `json:"max_agents"`
		Evictions int `json:"evictions"`
		Closed    int `json:"closed"`
	} `json:"cache"`
	ReloadError string `json:"reload_error"`
}

// platformStatus is one platform in /v1/status.
type platformStatus struct {
	Name     string `json:"name"`
	Plugin   string `json:"plugin"`
	State    string `json:"state"`
	Fatal    bool   `json:"fatal"`
	Error    string `json:"error"`
	Hint     string `json:"hint"`
	Restarts int    `json:"restarts"`
	PID      int    `json:"pid"`
	Path     string `json:"path"`
}

// status fetches /v1/status; ok is false while the endpoint does not answer.
func (e *env) status() (status, bool) {
	var st status
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + e.admin + "/v1/status")
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, false
	}
	return st, true
}

// platform returns the named platform from a status.
func (s status) platform(name string) (platformStatus, bool) {
	for _, p := range s.Platforms {
		if p.Name == name {
			return p, true
		}
	}
	return platformStatus{}, false
}

// waitPlatform polls /v1/status until the platform satisfies ok.
func (e *env) waitPlatform(name string, timeout time.Duration, ok func(platformStatus) bool) platformStatus {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var last platformStatus
	for time.Now().Before(deadline) {
		if st, up := e.status(); up {
			if p, found := st.platform(name); found {
				last = p
				if ok(p) {
					return p
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("platform %q did not reach the expected state within %s; last: %+v", name, timeout, last)
	return last
}

func inState(state string) func(platformStatus) bool {
	return func(p platformStatus) bool { return p.State == state }
}

// post sends a message to the HTTP platform at addr.
func post(t testing.TB, addr, body string, header ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/messages", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json") // header may override it
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("response %d is not JSON: %q", resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

// processAlive reports whether pid names a live (not zombie) process.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Field 3 is the state; a zombie has exited already.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}
