package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plughost/gateway/host/gateway"
	"github.com/plughost/gateway/host/gateway/gatewaytest"
	"github.com/plughost/gateway/host/supervisor"
	"github.com/plughost/gateway/shared/kit/fakekit"
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
	// Not a plugin: the MCP server the tools tests run (stdio).
	"mcpserver": "./testdata/mcpserver",
	// httpv1 is the HTTP plugin speaking protocol 1 only, as a binary
	// built before protocol 2 does.
	"httpv1": "-tags=gateway_protocol1 ./plugins/http",
}

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
	targets := map[string]string{"gateway": "./host/cmd/gateway"}
	for name, src := range pluginSources {
		targets[name] = src
	}
	bins, err = gatewaytest.Build(dir, raceEnabled, targets)
	if err != nil {
		fmt.Fprintln(os.Stderr, "building binaries for the e2e tests:", err)
		return 1
	}
	root, err := gatewaytest.ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bins["notplugin"] = filepath.Join(root, "testdata/plugins/notplugin.sh")
	defer stopPostgres()
	return m.Run()
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := fakekit.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// env is one test's installation: a folder with a config file, a plugin
// dir and a state dir.
type env struct {
	t *testing.T
	*gatewaytest.Install
	dir       string
	pluginDir string
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
	in, err := gatewaytest.NewInstall(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, Install: in, dir: in.Dir, pluginDir: in.PluginDir, admin: in.Admin}
}

// install puts the plugin built as name into the plugin dir as
// gateway-plugin-as.
func (e *env) install(name, as string) string {
	e.t.Helper()
	src, ok := bins[name]
	if !ok {
		e.t.Fatalf("plugin %q was not built", name)
	}
	dst, err := e.AddPlugin(src, as)
	if err != nil {
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
	if err := e.WriteConfig(src); err != nil {
		e.t.Fatal(err)
	}
}

// gw runs `gateway ARGS -config CONFIG` to completion.
func (e *env) gw(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	cmd := exec.Command(bins["gateway"], append(args, "-config", e.Config)...)
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

// syncBuffer is a buffer a process writes while a test reads it.
type syncBuffer = fakekit.SyncBuffer

// host is a running `gateway run`.
type host struct {
	*gatewaytest.Process
	t   *testing.T
	e   *env
	cmd *exec.Cmd
	log *fakekit.SyncBuffer
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
	h := &host{t: e.t, e: e, log: &syncBuffer{}}
	var p *gatewaytest.Process
	var err error
	if e.nofile > 0 {
		args := append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, e.nofile), bins["gateway"], "run", "-config", e.Config}, extra...)
		cmd := exec.Command("/bin/sh", args...)
		cmd.Stdout, cmd.Stderr = h.log, h.log
		cmd.Env = append(os.Environ(), environ...)
		p, err = gatewaytest.StartProcess(cmd)
	} else {
		p, err = e.Start(bins["gateway"], h.log, environ, extra...)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	h.Process, h.cmd = p, p.Cmd
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

func (h *host) stop() { h.Stop(15 * time.Second) }

// waitExit waits for the host to exit and returns its exit code.
func (h *host) waitExit(timeout time.Duration) int {
	h.t.Helper()
	code, err := h.Wait(timeout)
	if err != nil {
		h.t.Fatalf("%v; log:\n%s", err, h.log.String())
	}
	return code
}

// status is /v1/status.
type status struct{ gateway.Status }

// platformStatus is one platform in /v1/status.
type platformStatus = supervisor.Status

// status fetches /v1/status; ok is false while the endpoint does not answer.
func (e *env) status() (status, bool) {
	st, err := e.Status()
	return status{st}, err == nil
}

// platform returns the named platform from a status.
func (s status) platform(name string) (platformStatus, bool) {
	return gatewaytest.Platform(s.Status, name)
}

// waitPlatform polls /v1/status until the platform satisfies ok.
func (e *env) waitPlatform(name string, timeout time.Duration, ok func(platformStatus) bool) platformStatus {
	e.t.Helper()
	p, err := e.WaitPlatform(name, timeout, ok)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func inState(state string) func(platformStatus) bool {
	return gatewaytest.InState(supervisor.State(state))
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
	fakekit.Eventually(t, timeout, what, cond)
}
