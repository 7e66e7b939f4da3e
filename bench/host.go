package main

import (
	"encoding/json"
	"errors"
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
	"time"
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
	in := &install{dir: dir, config: filepath.Join(dir, "config.hcl")}
	if in.admin, err = freeAddr(); err != nil {
		return nil, err
	}
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
		addr, err := freeAddr()
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
	return in, os.WriteFile(in.config, []byte(b.String()), 0o644)
}

// url is the messages endpoint of HTTP platform i.
func (in *install) url(i int) string { return "http://" + in.web[i] + "/v1/messages" }

// lockPath is the host's lock file.
func (in *install) lockPath() string { return filepath.Join(in.dir, "state", "gateway.lock") }

// freeAddr returns a loopback address with a port free right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// proc is a subprocess the bench started: a host or a bare server. Every
// proc is killed when the bench exits.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
	log    *os.File
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
	p := &proc{cmd: cmd, exited: make(chan struct{}), log: f}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	procsMu.Lock()
	procs[p] = true
	procsMu.Unlock()
	go func() {
		p.err = cmd.Wait()
		f.Close()
		procsMu.Lock()
		delete(procs, p)
		procsMu.Unlock()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits until the process is reaped.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop sends SIGTERM and waits (SIGKILL after timeout).
func (p *proc) stop(timeout time.Duration) {
	if !p.alive() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.kill()
	}
}

// killAll kills every process still running (bench exit).
func killAll() {
	procsMu.Lock()
	ps := make([]*proc, 0, len(procs))
	for p := range procs {
		ps = append(ps, p)
	}
	procsMu.Unlock()
	for _, p := range ps {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
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
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !h.alive() {
			return fmt.Errorf("gateway exited: %v; log: %s", h.err, logTail(h.logPath))
		}
		if h.in.ready() {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("gateway not ready within %s; log: %s", timeout, logTail(h.logPath))
}

// adminClient talks to admin endpoints without keeping connections, so
// the bench does not add to the host's file descriptors.
var adminClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// ready reports whether /readyz answers 200.
func (in *install) ready() bool {
	resp, err := adminClient.Get("http://" + in.admin + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// status is the part of /v1/status the bench reads.
type status struct {
	PID       int `json:"pid"`
	Platforms []struct {
		Name     string `json:"name"`
		State    string `json:"state"`
		PID      int    `json:"pid"`
		Restarts int    `json:"restarts"`
	} `json:"platforms"`
	Cache struct {
		Agents    int `json:"agents"`
		Evictions int `json:"evictions"`
		Closed    int `json:"closed"`
	} `json:"cache"`
}

// status fetches /v1/status.
func (in *install) status() (status, error) {
	var st status
	resp, err := adminClient.Get("http://" + in.admin + "/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// allRunning reports whether every platform in st is running.
func (st status) allRunning(n int) bool {
	if len(st.Platforms) < n {
		return false
	}
	for _, p := range st.Platforms {
		if p.State != "running" {
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
