package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/plughost/gateway/host/gateway"
	"github.com/plughost/gateway/host/gateway/gatewaytest"
	"github.com/plughost/gateway/host/supervisor"
	"github.com/plughost/gateway/shared/kit/fakekit"
)

// installOpts shape one installation's config file.
type installOpts struct {
	// platforms is how many HTTP platforms (same plugin, own ports) to run.
	platforms int
	// maxAgents is cache.max_agents.
	maxAgents int
	// restart is the body of each platform's restart block.
	restart string
	// sync is store.sync; "" keeps the default ("always").
	sync string
	// providerURL, when set, is an OpenAI-compatible base URL the agent
	// uses (model openai/bench) instead of the echo provider.
	providerURL string
}

// install is one gateway installation in a temp dir: config file, state
// dir, admin address and the HTTP platforms' listen addresses.
type install struct {
	*gatewaytest.Install
	dir    string
	config string
	admin  string
	web    []string // listen addresses of the HTTP platforms
}

// newInstall writes a config into a new temp dir under root.
func newInstall(o installOpts) (*install, error) {
	if o.platforms <= 0 {
		o.platforms = 1
	}
	if o.maxAgents <= 0 {
		o.maxAgents = 1024
	}
	dir, err := os.MkdirTemp(env.tmp, "install-")
	if err != nil {
		return nil, err
	}
	gi, err := gatewaytest.NewInstall(dir)
	if err != nil {
		return nil, err
	}
	in := &install{Install: gi, dir: gi.Dir, config: gi.Config, admin: gi.Admin}
	model := "echo/echo"
	if o.providerURL != "" {
		model = "openai/bench"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `gateway {
  state_dir        = "state"
  plugin_dir       = %q
  admin            = %q
  log_level        = "warn"
  shutdown_timeout = "5s"
}
provider "echo" { type = "echo" }
agent {
  model          = %q
  max_concurrent = 256
}
cache {
  max_agents = %d
  idle_ttl   = "1h"
}
`, env.pluginDir, in.admin, model, o.maxAgents)
	if o.sync != "" {
		fmt.Fprintf(&b, "store {\n  sync = %q\n}\n", o.sync)
	}
	if o.providerURL != "" {
		fmt.Fprintf(&b, "provider \"openai\" {\n  type = \"openai\"\n  base_url = %q\n  api_key = \"bench\"\n}\n", o.providerURL)
	}
	for i := range o.platforms {
		addr, err := fakekit.FreeAddr()
		if err != nil {
			return nil, err
		}
		in.web = append(in.web, addr)
		fmt.Fprintf(&b, "platform \"web%d\" {\n  plugin = \"http\"\n  config {\n    listen  = %q\n    timeout = \"30s\"\n  }\n", i, addr)
		if o.restart != "" {
			fmt.Fprintf(&b, "  restart {\n%s\n  }\n", o.restart)
		}
		b.WriteString("}\n")
	}
	return in, in.WriteConfig(b.String())
}

// url is the messages endpoint of HTTP platform i.
func (in *install) url(i int) string { return "http://" + in.web[i] + "/v1/messages" }

// lockPath is the host's lock file.
func (in *install) lockPath() string { return filepath.Join(in.dir, "state", "gateway.lock") }

// proc is a subprocess the bench started: a host or a bare server. Every
// proc is killed when the bench exits.
type proc struct {
	*gatewaytest.Process
}

var (
	procsMu sync.Mutex
	procs   = map[*proc]bool{}
)

// startProc starts cmd, logging to logPath.
func startProc(cmd *exec.Cmd, logPath string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	gp, err := gatewaytest.StartProcess(cmd)
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &proc{Process: gp}
	procsMu.Lock()
	procs[p] = true
	procsMu.Unlock()
	go func() {
		<-gp.Exited()
		f.Close()
		procsMu.Lock()
		delete(procs, p)
		procsMu.Unlock()
	}()
	return p, nil
}

func (p *proc) pid() int                { return p.PID() }
func (p *proc) alive() bool             { return p.Alive() }
func (p *proc) kill()                   { p.Kill() }
func (p *proc) stop(wait time.Duration) { p.Stop(wait) }

// killAll kills every process still running (bench exit).
func killAll() {
	procsMu.Lock()
	ps := make([]*proc, 0, len(procs))
	for p := range procs {
		ps = append(ps, p)
	}
	procsMu.Unlock()
	for _, p := range ps {
		_ = p.Signal(syscall.SIGKILL)
	}
}

// logTail returns the last lines of the process log, for error messages.
func logTail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// host is a running `gateway run`.
type host struct {
	*proc
	in      *install
	logPath string
}

// start runs `gateway run -config` for the install.
func (in *install) start() (*host, error) {
	logPath := filepath.Join(in.dir, fmt.Sprintf("host-%d.log", time.Now().UnixNano()))
	cmd := exec.Command(env.gateway, "run", "-config", in.config)
	cmd.Dir = in.dir
	p, err := startProc(cmd, logPath)
	if err != nil {
		return nil, err
	}
	return &host{proc: p, in: in, logPath: logPath}, nil
}

// startReady starts the host and waits until /readyz answers 200.
func (in *install) startReady(timeout time.Duration) (*host, error) {
	h, err := in.start()
	if err != nil {
		return nil, err
	}
	if err := h.waitReady(timeout); err != nil {
		h.kill()
		return nil, err
	}
	return h, nil
}

// waitReady polls /readyz until 200.
func (h *host) waitReady(timeout time.Duration) error {
	_, err := pollUntil(timeout, 5*time.Millisecond, h.proc, h.in.Ready)
	if errors.Is(err, errExited) {
		return fmt.Errorf("gateway exited: %v; log: %s", h.Err(), logTail(h.logPath))
	}
	if err != nil {
		return fmt.Errorf("gateway not ready within %s; log: %s", timeout, logTail(h.logPath))
	}
	return nil
}

// ready reports whether /readyz answers 200.
func (in *install) ready() bool { return in.Ready() }

// status is /v1/status.
type status struct{ gateway.Status }

// status fetches /v1/status.
func (in *install) status() (status, error) {
	st, err := in.Status()
	return status{st}, err
}

// allRunning reports whether every platform in st is running.
func (st status) allRunning(n int) bool {
	if len(st.Platforms) < n {
		return false
	}
	for _, p := range st.Platforms {
		if p.State != supervisor.StateRunning {
			return false
		}
	}
	return true
}

// pluginPID returns the PID of platform i's plugin, 0 if none.
func (st status) pluginPID(i int) int {
	if i < len(st.Platforms) {
		return st.Platforms[i].PID
	}
	return 0
}

// adminClient reads /metrics without keeping connections, so the bench
// does not add to the host's file descriptors.
var adminClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// goroutines reads go_goroutines from the host's /metrics.
func (in *install) goroutines() (int, error) {
	resp, err := adminClient.Get("http://" + in.admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			var n float64
			_, err := fmt.Sscan(v, &n)
			return int(n), err
		}
	}
	return 0, errors.New("go_goroutines not in /metrics")
}
