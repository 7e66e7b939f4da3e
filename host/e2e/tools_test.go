package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plughost/gateway/host/provider/providertest"
	"github.com/plughost/gateway/host/store"
)

// mcpStatus is one MCP server in /v1/status.
type mcpStatus struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Tools    int    `json:"tools"`
	Error    string `json:"error"`
	Restarts int    `json:"restarts"`
	PID      int    `json:"pid"`
}

// mcpServers fetches the mcp part of /v1/status.
func (e *env) mcpServers() ([]mcpStatus, bool) {
	var st struct {
		MCP []mcpStatus `json:"mcp"`
	}
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + e.admin + "/v1/status")
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, false
	}
	return st.MCP, true
}

// waitMCP polls /v1/status until the MCP server satisfies ok, and returns
// the last status seen (ok false when the deadline passed).
func (e *env) waitMCP(name string, timeout time.Duration, ok func(mcpStatus) bool) (mcpStatus, bool) {
	deadline := time.Now().Add(timeout)
	var last mcpStatus
	for time.Now().Before(deadline) {
		if servers, up := e.mcpServers(); up {
			for _, s := range servers {
				if s.Name == name {
					last = s
					if ok(s) {
						return s, true
					}
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return last, false
}

// toolModel makes the fake provider a model that uses tools: a user
// message "call F ARGS" (several joined by " & ") asks for those function
// calls; once the tool results are in, it answers "tools said: RESULTS".
func toolModel(ai *providertest.Server) {
	ai.Calls = func(r *providertest.Request) []providertest.ToolCall {
		last := r.Messages[len(r.Messages)-1]
		if last.Role != "user" || !strings.HasPrefix(last.Content, "call ") {
			return nil
		}
		var calls []providertest.ToolCall
		for i, part := range strings.Split(strings.TrimPrefix(last.Content, "call "), " & ") {
			name, args, _ := strings.Cut(part, " ")
			if args == "" {
				args = "{}"
			}
			calls = append(calls, providertest.Call(fmt.Sprintf("call_%d", i), name, args))
		}
		return calls
	}
	ai.Reply = func(r *providertest.Request) string {
		var results []string
		for i := len(r.Messages) - 1; i >= 0 && r.Messages[i].Role == "tool"; i-- {
			results = append([]string{r.Messages[i].Content}, results...)
		}
		if len(results) > 0 {
			return "tools said: " + strings.Join(results, " | ")
		}
		return "plain reply to: " + r.LastUser()
	}
}

// agentPlatform is an HTTP platform block routed to agent.
func agentPlatform(name, addr, agent string) string {
	return fmt.Sprintf(`
platform %q {
  plugin = "http"
  agent  = %q
  config {
    listen = %q
  }
}
`, name, agent, addr)
}

func TestAgentsRoutedPerPlatformWithMCPTools(t *testing.T) {
	ai := newFakeOpenAI(t)
	toolModel(ai)
	e := newEnv(t)
	e.install("http", "http")
	support, personal := freeAddr(t), freeAddr(t)
	e.writeConfig(fmt.Sprintf(`
provider "openai" {
  type     = "openai"
  base_url = %q
  api_key  = "sk-test-key"
}
mcp "files" {
  command = [%q]
  env     = { TOKEN = "mcp-secret-value" }
  timeout = "10s"
}
agent {
  model         = "openai/test-model"
  system_prompt = "You are the personal assistant."
}
agent "support" {
  model         = "openai/test-model"
  system_prompt = "You are the support bot."
  tools         = ["files.echo", "files.calls", "files.pid", "files.slow", "files.fail"]
}
`, ai.URL, bins["mcpserver"]) + agentPlatform("support", support, "support") + agentPlatform("personal", personal, "default"))
	h := e.start()
	defer h.stop()
	e.waitPlatform("support", 20*time.Second, inState("running"))
	e.waitPlatform("personal", 20*time.Second, inState("running"))
	first, ok := e.waitMCP("files", 20*time.Second, func(s mcpStatus) bool { return s.State == "running" })
	if !ok || first.Tools != 7 || first.PID == 0 {
		t.Fatalf("MCP server files: %+v, want running with the test server's 7 tools", first)
	}

	// The personal agent: its own prompt, no tools.
	code, body := post(t, personal, `{"session":"bob","text":"hello"}`)
	if code != 200 || body["reply"] != "plain reply to: hello" {
		t.Fatalf("personal: %d %v", code, body)
	}
	req := ai.LastRequest()
	if req.System() != "You are the personal assistant." || len(req.Tools) != 0 {
		t.Fatalf("personal agent's request: system %q, tools %v; want its own prompt and no tools", req.System(), req.ToolNames())
	}

	// The support agent: its prompt and exactly its tools; a tool call
	// reaches the real MCP server and the user gets the final answer.
	code, body = post(t, support, `{"session":"alice","text":"call files__echo {\"text\":\"hi\"}"}`)
	if code != 200 || body["reply"] != "tools said: echoed: hi" {
		t.Fatalf("support, echo: %d %v", code, body)
	}
	reqs := ai.Requests()
	asked := reqs[len(reqs)-2]
	wantTools := []string{"files__calls", "files__echo", "files__fail", "files__pid", "files__slow"}
	if asked.System() != "You are the support bot." || !slices.Equal(asked.ToolNames(), wantTools) {
		t.Fatalf("support agent's request: system %q, tools %v; want its own prompt and tools %v", asked.System(), asked.ToolNames(), wantTools)
	}
	if n := len(reqs[len(reqs)-1].Messages); n < 3 || reqs[len(reqs)-1].Messages[n-1].ToolCallID != "call_0" {
		t.Fatalf("the tool result was not sent back as a tool message: %+v", reqs[len(reqs)-1].Messages)
	}

	// A tool outside the agent's list (env exists on the server) is never
	// called: the model gets an error; two calls in one round both run;
	// a failing tool's error goes to the model, not the user.
	code, body = post(t, support, `{"session":"alice","text":"call files__env & files__fail & files__calls"}`)
	reply, _ := body["reply"].(string)
	parts := strings.Split(strings.TrimPrefix(reply, "tools said: "), " | ")
	if code != 200 || len(parts) != 3 || !strings.Contains(parts[0], "not a tool you may use") ||
		!strings.Contains(parts[1], "failed on purpose") {
		t.Fatalf("support, disallowed + failing: %d %q", code, reply)
	}
	// The server counted echo and fail (calls does not count itself, and
	// may run before fail in the same round): env never reached it.
	if parts[2] != "1" && parts[2] != "2" {
		t.Fatalf("the server's call count is %q, want 1 or 2 (echo, maybe fail): env must not have been called", parts[2])
	}
	code, body = post(t, support, `{"session":"alice","text":"call files__calls"}`)
	if code != 200 || body["reply"] != "tools said: 2" {
		t.Fatalf("the server counted %v calls, want 2 (echo, fail; env refused)", body["reply"])
	}

	// /stop cancels a running tool call: the user gets "Stopped." long
	// before the tool's 60 s, and no answer follows.
	stopped := make(chan map[string]any, 1)
	go func() {
		_, b := post(t, support, `{"session":"alice","text":"call files__slow {\"millis\":60000}"}`)
		stopped <- b
	}()
	waitCalls := time.Now().Add(10 * time.Second)
	// The model's 8th request is the one that asks for the slow tool; once
	// it is answered the tool is (about to be) running.
	for len(ai.Requests()) < 8 && time.Now().Before(waitCalls) {
		time.Sleep(10 * time.Millisecond)
	}
	if code, b := post(t, support, `{"session":"alice","text":"/stop"}`); code != 200 {
		t.Fatalf("/stop: %d %v", code, b)
	}
	select {
	case b := <-stopped:
		if b["reply"] != "Stopped." {
			t.Fatalf("the stopped tool turn answered %v, want Stopped.", b)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("/stop did not cancel the running tool call")
	}

	// /status shows the agent.
	code, body = post(t, support, `{"session":"alice","text":"/status"}`)
	if s, _ := body["reply"].(string); code != 200 || !strings.Contains(s, "Agent: support") {
		t.Fatalf("/status: %d %v", code, body)
	}

	// gateway status lists the MCP server.
	out, _, rc := e.gw("status")
	if rc != 0 || !strings.Contains(out, "MCP") || !strings.Contains(out, "files") || strings.Contains(out, "mcp-secret-value") {
		t.Fatalf("gateway status (exit %d):\n%s", rc, out)
	}

	// A killed MCP server is restarted, and its tools work again.
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	again, ok := e.waitMCP("files", 20*time.Second, func(s mcpStatus) bool {
		return s.State == "running" && s.PID != 0 && s.PID != first.PID && s.Restarts >= 1
	})
	if !ok {
		t.Fatalf("the killed MCP server was not restarted: %+v", again)
	}
	code, body = post(t, support, `{"session":"alice","text":"call files__pid"}`)
	if want := fmt.Sprintf("tools said: %d", again.PID); code != 200 || body["reply"] != want {
		t.Fatalf("after the restart: %d %v, want %q", code, body, want)
	}

	// The transcript holds the tool turns: the assistant's calls, then the
	// results, then the reply.
	h.stop()
	st, err := store.Open(filepath.Join(e.dir, "state", store.FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	msgs, err := st.Transcript("support:alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	var roles []string
	for _, m := range msgs[:4] {
		roles = append(roles, m.Role)
	}
	if !slices.Equal(roles, []string{"user", "assistant", "tool", "assistant"}) || len(msgs[1].ToolCalls) == 0 ||
		msgs[2].ToolCallID != "call_0" || msgs[2].Content != "echoed: hi" || msgs[3].Content != "tools said: echoed: hi" {
		t.Fatalf("transcript of the first tool turn: %+v", msgs[:4])
	}
}

// TestPublishedMCPServerEverything runs the reference MCP server from npm
// (@modelcontextprotocol/server-everything) through the host. It needs npx
// (make test-deps installs it) and the package, fetched from the npm
// registry unless it is in npm's cache.
func TestPublishedMCPServerEverything(t *testing.T) {
	npx, err := exec.LookPath("npx")
	if err != nil {
		t.Fatalf("npx is not installed (make test-deps installs Debian's npm): %v", err)
	}
	ai := newFakeOpenAI(t)
	toolModel(ai)
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(fmt.Sprintf(`
provider "openai" {
  type     = "openai"
  base_url = %q
  api_key  = "sk-test-key"
}
mcp "everything" {
  command = [%q, "-y", "@modelcontextprotocol/server-everything"]
}
agent {
  model = "openai/test-model"
  tools = ["everything.echo"]
}
`, ai.URL, npx) + agentPlatform("web", web, "default"))
	h := e.start()
	defer h.stop()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	st, ok := e.waitMCP("everything", 60*time.Second, func(s mcpStatus) bool { return s.State == "running" })
	if !ok {
		t.Skipf("SKIPPED, not passed: @modelcontextprotocol/server-everything did not start through npx within 60s (no network to the npm registry and not in npm's cache?); last status: state %s, error %q", st.State, st.Error)
	}
	code, body := post(t, web, `{"session":"s","text":"call everything__echo {\"message\":\"from the gateway\"}"}`)
	if reply, _ := body["reply"].(string); code != 200 || !strings.Contains(reply, "from the gateway") {
		t.Fatalf("echo through server-everything: %d %v", code, body)
	}
}
