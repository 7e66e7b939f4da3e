package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"

	"github.com/plughost/gateway/host/tools/toolstest"
)

var serverBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tools-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	serverBin = filepath.Join(dir, "mcpserver")
	out, err := exec.Command("go", "build", "-o", serverBin, "github.com/plughost/gateway/testdata/mcpserver").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building the test MCP server: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func stdioConfig(name string) ServerConfig {
	return ServerConfig{Name: name, Command: []string{serverBin}, Env: map[string]string{"TOOL_TOKEN": "s3cret"},
		Timeout: 5 * time.Second, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func running(m *Manager, name string) func() bool {
	return func() bool {
		for _, s := range m.Status() {
			if s.Name == name && s.State == StateRunning {
				return true
			}
		}
		return false
	}
}

func statusOf(m *Manager, name string) Status {
	for _, s := range m.Status() {
		if s.Name == name {
			return s
		}
	}
	return Status{}
}

func TestStdioServerToolsAreCalledAndScoped(t *testing.T) {
	m := New(hclog.NewNullLogger())
	defer m.Close()
	m.Apply([]ServerConfig{stdioConfig("files")})
	waitFor(t, "the server to run", running(m, "files"))
	if st := statusOf(m, "files"); st.Tools != 7 || st.PID == 0 {
		t.Fatalf("status %+v, want 7 tools and a pid", st)
	}

	ts := m.Toolset([]string{"files.echo", "files.calls"})
	var names []string
	for _, f := range ts.Functions() {
		names = append(names, f.Name)
		if !json.Valid(f.Parameters) {
			t.Errorf("function %s has invalid parameters %s", f.Name, f.Parameters)
		}
	}
	if strings.Join(names, ",") != "files__calls,files__echo" {
		t.Fatalf("functions %v, want only the allowed tools", names)
	}
	res, isErr, err := ts.Call(context.Background(), "files__echo", json.RawMessage(`{"text":"hi"}`))
	if err != nil || isErr || res != "echoed: hi" {
		t.Fatalf("echo: %q %v %v", res, isErr, err)
	}
	// A tool the agent may not use is never called, even if the model asks.
	res, isErr, err = ts.Call(context.Background(), "files__add", json.RawMessage(`{"a":1,"b":2}`))
	if !errors.Is(err, ErrNotAllowed) || !isErr || !strings.Contains(res, "not a tool you may use") {
		t.Fatalf("disallowed call: %q %v %v", res, isErr, err)
	}
	res, _, _ = ts.Call(context.Background(), "files__calls", nil)
	if res != "1" {
		t.Fatalf("the server ran %s tool calls, want 1 (the disallowed one must not reach it)", res)
	}

	all := m.Toolset([]string{"files.*"})
	if all.Len() != 7 {
		t.Fatalf("files.* allows %d tools, want 7", all.Len())
	}
	res, isErr, _ = all.Call(context.Background(), "files__fail", nil)
	if !isErr || res != "the tool failed on purpose" {
		t.Fatalf("a failing tool: %q isError=%v", res, isErr)
	}
	if none := m.Toolset([]string{"other.*"}); none.Len() != 0 {
		t.Fatalf("another server's pattern allowed %d tools", none.Len())
	}
}

func TestServerGetsOnlyItsOwnEnvironment(t *testing.T) {
	t.Setenv("DISCORD_TOKEN", "must-not-leak")
	m := New(hclog.NewNullLogger())
	defer m.Close()
	m.Apply([]ServerConfig{stdioConfig("files")})
	waitFor(t, "the server to run", running(m, "files"))
	res, _, err := m.Toolset([]string{"files.env"}).Call(context.Background(), "files__env", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, k := range strings.Split(res, ",") {
		got[k] = true
	}
	if got["DISCORD_TOKEN"] || !got["TOOL_TOKEN"] || !got["PATH"] {
		t.Fatalf("the server's environment is %q: want PATH, HOME and its own TOOL_TOKEN only", res)
	}
}

func TestKilledServerIsRestarted(t *testing.T) {
	m := New(hclog.NewNullLogger())
	defer m.Close()
	m.Apply([]ServerConfig{stdioConfig("files")})
	waitFor(t, "the server to run", running(m, "files"))
	first := statusOf(m, "files").PID
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new server process", func() bool {
		st := statusOf(m, "files")
		return st.State == StateRunning && st.PID != 0 && st.PID != first
	})
	if st := statusOf(m, "files"); st.Restarts < 1 {
		t.Fatalf("status %+v, want a restart counted", st)
	}
	res, _, err := m.Toolset([]string{"files.pid"}).Call(context.Background(), "files__pid", nil)
	if err != nil || res != strconv.Itoa(statusOf(m, "files").PID) {
		t.Fatalf("the restarted server answered %q (%v)", res, err)
	}
}

func TestDownServerMakesItsToolsUnavailableNotTheAgent(t *testing.T) {
	m := New(hclog.NewNullLogger())
	defer m.Close()
	bad := ServerConfig{Name: "broken", Command: []string{"/nonexistent/mcp-server"},
		InitialBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	m.Apply([]ServerConfig{bad, stdioConfig("files")})
	waitFor(t, "the good server to run", running(m, "files"))
	waitFor(t, "the broken server to back off", func() bool {
		st := statusOf(m, "broken")
		return st.State == StateBackoff && strings.Contains(st.Error, "/nonexistent/mcp-server")
	})
	ts := m.Toolset([]string{"broken.*", "files.echo"})
	if ts.Len() != 1 || len(ts.Unavailable) != 1 || ts.Unavailable[0] != "broken" {
		t.Fatalf("toolset has %d tools, unavailable %v: want the good server's tool and broken named", ts.Len(), ts.Unavailable)
	}
}

func TestToolCallTimeout(t *testing.T) {
	m := New(hclog.NewNullLogger())
	defer m.Close()
	cfg := stdioConfig("files")
	cfg.Timeout = 100 * time.Millisecond
	m.Apply([]ServerConfig{cfg})
	waitFor(t, "the server to run", running(m, "files"))
	res, isErr, err := m.Toolset([]string{"files.slow"}).Call(context.Background(), "files__slow", json.RawMessage(`{"millis":5000}`))
	if err != nil || !isErr || !strings.Contains(res, "did not answer within 100ms") {
		t.Fatalf("slow tool: %q isError=%v err=%v", res, isErr, err)
	}
}

func TestCloseStopsTheProcess(t *testing.T) {
	m := New(hclog.NewNullLogger())
	m.Apply([]ServerConfig{stdioConfig("files")})
	waitFor(t, "the server to run", running(m, "files"))
	pid := statusOf(m, "files").PID
	m.Close()
	waitFor(t, "the server process to exit", func() bool { return syscall.Kill(pid, 0) != nil })
}

func TestApplyKeepsUnchangedServersAndRestartsChanged(t *testing.T) {
	m := New(hclog.NewNullLogger())
	defer m.Close()
	a, b := stdioConfig("a"), stdioConfig("b")
	m.Apply([]ServerConfig{a, b})
	waitFor(t, "a to run", running(m, "a"))
	waitFor(t, "b to run", running(m, "b"))
	pidA, pidB := statusOf(m, "a").PID, statusOf(m, "b").PID
	b.Timeout = time.Minute
	m.Apply([]ServerConfig{a, b})
	waitFor(t, "b to run again", func() bool { st := statusOf(m, "b"); return st.State == StateRunning && st.PID != pidB })
	if statusOf(m, "a").PID != pidA {
		t.Fatal("an unchanged server was restarted by Apply")
	}
	m.Apply([]ServerConfig{a})
	if len(m.Status()) != 1 {
		t.Fatalf("a removed server is still listed: %+v", m.Status())
	}
	waitFor(t, "the removed server's process to exit", func() bool { return syscall.Kill(pidB, 0) != nil })
}

func TestStreamableHTTPServerWithHeaders(t *testing.T) {
	var calls atomic.Int64
	srv := toolstest.NewServer(&calls)
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	var sawAuth atomic.Bool
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tool-key" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		sawAuth.Store(true)
		handler.ServeHTTP(w, r)
	}))
	defer hs.Close()
	m := New(hclog.NewNullLogger())
	m.Apply([]ServerConfig{{Name: "remote", URL: hs.URL, Headers: map[string]string{"Authorization": "Bearer tool-key"},
		Timeout: 5 * time.Second, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}})
	waitFor(t, "the HTTP server session", running(m, "remote"))
	res, isErr, err := m.Toolset([]string{"remote.add"}).Call(context.Background(), "remote__add", json.RawMessage(`{"a":2,"b":3}`))
	if err != nil || isErr || res != "5" || !sawAuth.Load() || calls.Load() != 1 {
		t.Fatalf("remote add: %q isError=%v err=%v auth=%v calls=%d", res, isErr, err, sawAuth.Load(), calls.Load())
	}
	m.Close()
	hs.CloseClientConnections()
}

func TestFunctionNames(t *testing.T) {
	for _, tc := range []struct{ server, tool, want string }{
		{"files", "read_file", "files__read_file"},
		{"my.server", "do it!", "my_server__do_it_"},
	} {
		if got := FunctionName(tc.server, tc.tool); got != tc.want {
			t.Errorf("FunctionName(%q, %q) = %q, want %q", tc.server, tc.tool, got, tc.want)
		}
	}
	long := FunctionName(strings.Repeat("s", 40), strings.Repeat("t", 40))
	if len(long) != 64 || long == FunctionName(strings.Repeat("s", 40), strings.Repeat("t", 41)) {
		t.Fatalf("long names are not cut to 64 and kept unique: %q", long)
	}
}
