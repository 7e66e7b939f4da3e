package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/plughost/gateway/host/version"
)

// stableAfter is how long a server must stay up for its backoff to reset.
const stableAfter = 30 * time.Second

// stopGrace bounds how long stopping one server may take: closing stdin,
// then SIGTERM, then SIGKILL (the MCP stdio shutdown sequence).
const stopGrace = 2 * time.Second

// server runs one `mcp` block: connect, list tools, wait for the session to
// end, back off, again, until stopped.
type server struct {
	cfg    ServerConfig
	log    hclog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	st      Status
	session *mcp.ClientSession
	list    []Tool
}

func newServer(cfg ServerConfig, log hclog.Logger) *server {
	ctx, cancel := context.WithCancel(context.Background())
	return &server{cfg: cfg, log: log, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		st: Status{Name: cfg.Name, State: StateStarting}}
}

func (s *server) start() { go s.loop() }

// stop ends the loop and waits, bounded, for the server to be gone.
func (s *server) stop() {
	s.cancel()
	t := time.NewTimer(stopGrace + 3*time.Second)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		s.log.Warn("MCP server did not stop in time")
	}
}

func (s *server) status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// tools returns the server's tools, and false while it is not running.
func (s *server) tools() ([]Tool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list, s.session != nil
}

func (s *server) set(edit func(*Status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	edit(&s.st)
}

// loop runs on a goroutine locked to its OS thread and never unlocked: a
// stdio server is forked from that thread with Pdeathsig, so it dies with
// the host even on SIGKILL, and when the loop ends the thread exits too,
// taking anything still running with it.
func (s *server) loop() {
	runtime.LockOSThread()
	defer close(s.done)
	attempt := 0
	for s.ctx.Err() == nil {
		s.set(func(st *Status) { st.State, st.PID = StateStarting, 0 })
		session, pid, err := s.connect()
		var tools []Tool
		if err == nil {
			tools, err = listTools(s.ctx, s.cfg.Name, session)
			if err != nil {
				_ = session.Close()
			}
		}
		if s.ctx.Err() != nil {
			if err == nil {
				_ = session.Close()
			}
			break
		}
		if err == nil {
			up := time.Now()
			s.mu.Lock()
			s.session, s.list = session, tools
			s.st = Status{Name: s.cfg.Name, State: StateRunning, Tools: len(tools), PID: pid, Restarts: s.st.Restarts}
			s.mu.Unlock()
			s.log.Info("MCP server running", "tools", len(tools), "pid", pid)
			err = s.wait(session)
			s.mu.Lock()
			s.session, s.list = nil, nil
			s.mu.Unlock()
			if s.ctx.Err() != nil {
				break
			}
			if time.Since(up) >= stableAfter {
				attempt = 0
			}
			if err == nil {
				err = errors.New("the server ended the session")
			}
		}
		wait := backoff(attempt, s.cfg.InitialBackoff, s.cfg.MaxBackoff)
		attempt++
		s.log.Warn("MCP server unavailable; restarting", "error", err, "retry_in", wait)
		s.set(func(st *Status) {
			st.State, st.Error, st.Tools, st.PID = StateBackoff, err.Error(), 0, 0
			st.Restarts++
		})
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
		}
	}
	s.set(func(st *Status) { st.State, st.Tools, st.PID = StateStopped, 0, 0 })
}

// wait blocks until the session ends or the server is stopped (then it
// closes the session: stdin closed, SIGTERM, SIGKILL).
func (s *server) wait(session *mcp.ClientSession) error {
	ended := make(chan error, 1)
	go func() { ended <- session.Wait() }()
	select {
	case err := <-ended:
		// Close even a session that ended by itself: it also stops the
		// SDK's background listeners.
		_ = session.Close()
		return err
	case <-s.ctx.Done():
		_ = session.Close()
		<-ended
		return nil
	}
}

// connect starts (stdio) or reaches (HTTP) the server and initializes the
// MCP session.
func (s *server) connect() (*mcp.ClientSession, int, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "gateway", Version: version.Version}, &mcp.ClientOptions{
		KeepAlive: 30 * time.Second,
		ToolListChangedHandler: func(ctx context.Context, _ *mcp.ToolListChangedRequest) {
			go s.relist()
		},
	})
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if s.cfg.URL != "" {
		transport := &mcp.StreamableClientTransport{
			Endpoint:   s.cfg.URL,
			HTTPClient: &http.Client{Transport: headerTransport{headers: s.cfg.Headers, base: http.DefaultTransport}},
			MaxRetries: 2,
		}
		session, err := client.Connect(ctx, transport, nil)
		if err != nil {
			return nil, 0, fmt.Errorf("connecting to %s: %w", s.cfg.URL, err)
		}
		return session, 0, nil
	}
	if len(s.cfg.Command) == 0 {
		return nil, 0, errors.New("the mcp block has neither command nor url")
	}
	cmd := exec.Command(s.cfg.Command[0], s.cfg.Command[1:]...)
	cmd.Env = serverEnv(s.cfg.Env)
	cmd.Stderr = s.log.StandardWriter(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug})
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	session, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: stopGrace}, nil)
	if err != nil {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
		}
		return nil, 0, fmt.Errorf("starting %q: %w", s.cfg.Command[0], err)
	}
	return session, cmd.Process.Pid, nil
}

// relist reads the tool list again after the server said it changed.
func (s *server) relist() {
	s.mu.Lock()
	session := s.session
	s.mu.Unlock()
	if session == nil {
		return
	}
	tools, err := listTools(s.ctx, s.cfg.Name, session)
	if err != nil {
		s.log.Warn("re-reading the tool list failed", "error", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.session == session {
		s.list = tools
		s.st.Tools = len(tools)
	}
}

// call runs one tool with the block's timeout.
func (s *server) call(ctx context.Context, name string, args json.RawMessage) (string, bool, error) {
	s.mu.Lock()
	session := s.session
	s.mu.Unlock()
	if session == nil {
		return "", false, fmt.Errorf("%w: MCP server %q is not running", ErrUnavailable, s.cfg.Name)
	}
	if s.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.Timeout)
		defer cancel()
	}
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return "", false, fmt.Errorf("tool %s.%s did not answer within %s", s.cfg.Name, name, s.cfg.Timeout)
		}
		return "", false, fmt.Errorf("calling %s.%s: %w", s.cfg.Name, name, err)
	}
	return resultText(res), res.IsError, nil
}

// resultText flattens a tool result into the text the model reads.
func resultText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		switch c := c.(type) {
		case *mcp.TextContent:
			b.WriteString(c.Text)
		case *mcp.ImageContent:
			fmt.Fprintf(&b, "[image %s, %d bytes]", c.MIMEType, len(c.Data))
		case *mcp.AudioContent:
			fmt.Fprintf(&b, "[audio %s, %d bytes]", c.MIMEType, len(c.Data))
		default:
			raw, _ := json.Marshal(c)
			b.Write(raw)
		}
	}
	if b.Len() == 0 && res.StructuredContent != nil {
		raw, _ := json.Marshal(res.StructuredContent)
		b.Write(raw)
	}
	return b.String()
}

// listTools reads every page of the server's tool list.
func listTools(ctx context.Context, server string, session *mcp.ClientSession) ([]Tool, error) {
	var out []Tool
	cursor := ""
	for {
		res, err := session.ListTools(ctx, &mcp.ListToolsParams{Cursor: cursor})
		if err != nil {
			return nil, fmt.Errorf("listing tools: %w", err)
		}
		for _, t := range res.Tools {
			schema, _ := json.Marshal(t.InputSchema)
			out = append(out, Tool{Server: server, Name: t.Name, Description: t.Description, InputSchema: schema})
		}
		if res.NextCursor == "" {
			return out, nil
		}
		cursor = res.NextCursor
	}
}

// serverEnv is a stdio server's whole environment: PATH and HOME from the
// host (so npx and friends work) and what its block gives it, nothing else:
// other servers' and platforms' secrets never reach it.
func serverEnv(extra map[string]string) []string {
	env := []string{}
	for _, k := range []string{"PATH", "HOME"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// headerTransport adds an mcp block's headers to every request.
type headerTransport struct {
	headers map[string]string
	base    http.RoundTripper
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(h.headers) > 0 {
		r = r.Clone(r.Context())
		for k, v := range h.headers {
			r.Header.Set(k, v)
		}
	}
	return h.base.RoundTrip(r)
}

// backoff is the capped, jittered exponential wait before restart n.
func backoff(n int, base, max time.Duration) time.Duration {
	if base <= 0 {
		base = time.Second
	}
	if max < base {
		max = time.Minute
	}
	d := base
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d/2 + rand.N(d/2+1)
}
