package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestNamedAgentsAndMCP(t *testing.T) {
	t.Parallel()
	c := mustParse(t, `
mcp "files" {
  command = ["mcp-files", "/srv"]
  env     = { TOKEN = "SECRET-ENV" }
  timeout = "5s"
}
mcp "web" {
  url     = "http://127.0.0.1:9000/mcp"
  headers = { Authorization = "Bearer SECRET-HDR" }
}
agent {
  system_prompt = "default prompt"
}
agent "support" {
  system_prompt   = "support prompt"
  history_limit   = 4
  tools           = ["files.read_file", "web.*"]
  max_tool_rounds = 3
}
platform "web" {
  agent = "support"
}
platform "tg" {}
`, nil)
	if len(c.Agents) != 2 || c.Agents[0].Name != "default" || c.Agents[1].Name != "support" {
		t.Fatalf("Agents = %v", c.Agents)
	}
	if c.Agent.SystemPrompt != "default prompt" || c.Agent.MaxToolRounds != DefaultMaxToolRounds {
		t.Errorf("default agent = %+v", c.Agent)
	}
	s := c.AgentByName("support")
	if s.SystemPrompt != "support prompt" || s.HistoryLimit != 4 || s.MaxToolRounds != 3 || s.Model != DefaultModel ||
		!reflect.DeepEqual(s.Tools, []string{"files.read_file", "web.*"}) {
		t.Errorf("support agent = %+v", s)
	}
	if c.PlatformByName("web").Agent != "support" || c.PlatformByName("tg").Agent != "default" {
		t.Errorf("platform agents: web %q, tg %q", c.PlatformByName("web").Agent, c.PlatformByName("tg").Agent)
	}
	f := c.MCPByName("files")
	if f.Timeout != 5*time.Second || f.Env["TOKEN"] != "SECRET-ENV" || c.MCPByName("web").Timeout != DefaultMCPTimeout {
		t.Errorf("mcp = %+v / %+v", f, c.MCPByName("web"))
	}
	var printed []string
	for _, m := range c.MCP {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			printed = append(printed, fmt.Sprintf(verb, m), fmt.Sprintf(verb, *m))
		}
		b, _ := json.Marshal(m)
		printed = append(printed, string(b))
	}
	b, _ := json.Marshal(c)
	printed = append(printed, string(b), fmt.Sprintf("%+v", c.MCP))
	for _, p := range printed {
		if strings.Contains(p, "SECRET") {
			t.Errorf("a secret was printed: %s", p)
		}
	}
}

func TestAgentDiagnostics(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		src  string
		want [][2]string
	}{
		"unknown agent": {`platform "web" {
  agent = "nope"
}`, [][2]string{{"config.hcl:2:3:", `platform "web" talks to the agent "nope", but there is no agent "nope" block; the agents are "default"`}}},
		"duplicate default": {"agent {}\nagent \"default\" {}\n", [][2]string{{"config.hcl:2:1:", "Duplicate agent block"}}},
		"unknown server": {`agent "a" {
  tools = ["files.x"]
}`, [][2]string{{"config.hcl:2:3:", `no mcp "files" block`}}},
		"bad pattern": {`mcp "files" {
  command = ["x"]
}
agent {
  tools = ["files"]
}`, [][2]string{{"config.hcl:5:3:", `"SERVER.TOOL" or "SERVER.*"`}}},
		"both": {`mcp "m" {
  command = ["x"]
  url     = "http://127.0.0.1:1/mcp"
}`, [][2]string{{"config.hcl:3:3:", "sets both command and url"}}},
		"neither": {`mcp "m" {}`, [][2]string{{"config.hcl:1:1:", "needs command"}}},
		"dotted name": {`mcp "a.b" {
  command = ["x"]
}`, [][2]string{{"config.hcl:1:5:", "Invalid mcp name"}}},
		"limits in named agent": {`agent "a" {
  queue_limit = 2
}`, [][2]string{{"config.hcl:2:3:", "queue_limit applies to every agent"}}},
		"two labels": {`agent "a" "b" {}`, [][2]string{{"config.hcl:1:11:", "Extraneous label"}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, diags := parse([]byte(tc.src), "config.hcl", env(nil))
			checkDiags(t, diags, tc.want...)
		})
	}
}
