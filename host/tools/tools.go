// Package tools runs the MCP (Model Context Protocol) servers that give
// agents their tools: one process (stdio) or HTTP session (streamable HTTP)
// per `mcp` block, shared by every agent that uses it, started by the host,
// restarted with backoff when it dies, and stopped on shutdown.
//
// An agent sees a server's tools through a Toolset: the tools its `tools`
// patterns allow ("files.read_file", "files.*") among those the running
// servers offer now, each under an OpenAI-compatible function name. A call
// to anything outside the set is refused without reaching a server, and a
// server that is down makes its tools unavailable, never the agent.
package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ServerConfig is one `mcp` block.
type ServerConfig struct {
	// Name is the block label; tools are named NAME.TOOL.
	Name string
	// Command runs a stdio server: argv, Command[0] looked up in PATH.
	Command []string
	// Env is the server process's whole environment beside PATH and HOME
	// (values are secrets: never logged).
	Env map[string]string
	// URL is a streamable HTTP server's endpoint (instead of Command).
	URL string
	// Headers are sent with every HTTP request (values are secrets).
	Headers map[string]string
	// Timeout bounds one tool call.
	Timeout time.Duration
	// InitialBackoff and MaxBackoff bound the wait before a restart.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
}

// equal reports whether two configs would run the same server.
func (c ServerConfig) equal(o ServerConfig) bool {
	a, _ := json.Marshal(c)
	b, _ := json.Marshal(o)
	return string(a) == string(b)
}

// State is a server's lifecycle state, as /v1/status shows it.
type State string

// The states of an MCP server.
const (
	StateStarting State = "starting"
	StateRunning  State = "running"
	StateBackoff  State = "backoff"
	StateStopped  State = "stopped"
)

// Status is one server's entry in /v1/status.
type Status struct {
	Name     string `json:"name"`
	State    State  `json:"state"`
	Tools    int    `json:"tools"`
	Error    string `json:"error,omitempty"`
	Restarts int    `json:"restarts"`
	PID      int    `json:"pid,omitempty"`
}

// Tool is one tool a running server offers.
type Tool struct {
	Server      string
	Name        string
	Description string
	// InputSchema is the tool's JSON Schema for its arguments.
	InputSchema json.RawMessage
}

// FullName is the tool's name in config: SERVER.TOOL.
func (t Tool) FullName() string { return t.Server + "." + t.Name }

// ErrUnavailable means the tool's server is not running now.
var ErrUnavailable = errors.New("tool server unavailable")

// Manager runs the configured MCP servers.
type Manager struct {
	logger hclog.Logger

	mu      sync.Mutex
	servers map[string]*server
	closed  bool
}

// New returns a Manager that runs nothing until Apply.
func New(logger hclog.Logger) *Manager {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Manager{logger: logger.Named("mcp"), servers: map[string]*server{}}
}

// Apply starts servers that are new, restarts those whose config changed,
// and stops those no longer configured. Unchanged servers keep running.
func (m *Manager) Apply(configs []ServerConfig) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	want := map[string]ServerConfig{}
	for _, c := range configs {
		want[c.Name] = c
	}
	var stop []*server
	for name, s := range m.servers {
		if c, ok := want[name]; !ok || !c.equal(s.cfg) {
			stop = append(stop, s)
			delete(m.servers, name)
		}
	}
	for name, c := range want {
		if _, ok := m.servers[name]; !ok {
			s := newServer(c, m.logger.Named(name))
			m.servers[name] = s
			s.start()
		}
	}
	m.mu.Unlock()
	for _, s := range stop {
		s.stop()
	}
}

// Close stops every server and waits for them (each bounded).
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	all := make([]*server, 0, len(m.servers))
	for _, s := range m.servers {
		all = append(all, s)
	}
	m.servers = map[string]*server{}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Add(1)
		go func() { defer wg.Done(); s.stop() }()
	}
	wg.Wait()
}

// Status lists the servers by name.
func (m *Manager) Status() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, 0, len(m.servers))
	for _, s := range m.servers {
		out = append(out, s.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Toolset returns the tools that patterns allow among those the running
// servers offer now. Patterns are SERVER.TOOL or SERVER.*.
func (m *Manager) Toolset(patterns []string) *Toolset {
	m.mu.Lock()
	servers := make([]*server, 0, len(m.servers))
	for _, s := range m.servers {
		servers = append(servers, s)
	}
	m.mu.Unlock()
	ts := &Toolset{m: m, byFunc: map[string]Tool{}}
	var missing []string
	for _, s := range servers {
		if !anyPatternFor(patterns, s.cfg.Name) {
			continue
		}
		tools, ok := s.tools()
		if !ok {
			missing = append(missing, s.cfg.Name)
			continue
		}
		for _, t := range tools {
			if allowed(patterns, t) {
				ts.add(t)
			}
		}
	}
	sort.Strings(missing)
	ts.Unavailable = missing
	return ts
}

// call runs a tool on its server.
func (m *Manager) call(ctx context.Context, t Tool, args json.RawMessage) (string, bool, error) {
	m.mu.Lock()
	s := m.servers[t.Server]
	m.mu.Unlock()
	if s == nil {
		return "", false, fmt.Errorf("%w: no MCP server %q", ErrUnavailable, t.Server)
	}
	return s.call(ctx, t.Name, args)
}
