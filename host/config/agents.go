package config

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// DefaultAgentName is the agent an unnamed agent block defines and a
// platform without agent = "…" talks to.
const DefaultAgentName = "default"

// MCP is an mcp "NAME" block: one MCP server whose tools agents may use.
type MCP struct {
	Name    string
	Command []string          // stdio: argv
	Env     map[string]string // the server's environment; values sensitive
	URL     string            // streamable HTTP endpoint (instead of Command)
	Headers map[string]string // sent with every HTTP request; values sensitive
	Timeout time.Duration     // per tool call; default DefaultMCPTimeout
	// DeclRange is where the block starts, for diagnostics.
	DeclRange hcl.Range
}

// AgentByName returns the agent named name, or nil.
func (c *Config) AgentByName(name string) *Agent {
	for _, a := range c.Agents {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// MCPByName returns the mcp block named name, or nil.
func (c *Config) MCPByName(name string) *MCP {
	for _, m := range c.MCP {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// splitAgentBlocks takes the agent blocks out of the file's body: they may
// have a label (agent "NAME") or not (agent {}, the default agent), which
// one block schema cannot say.
func splitAgentBlocks(body hcl.Body) (hcl.Body, []*hcl.Block) {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return body, nil
	}
	rest := *sb
	rest.Blocks = nil
	var agents []*hcl.Block
	for _, b := range sb.Blocks {
		if b.Type == "agent" {
			agents = append(agents, b.AsHCLBlock())
			continue
		}
		rest.Blocks = append(rest.Blocks, b)
	}
	return &rest, agents
}

// agentOnlyDefault are the agent attributes that are gateway-wide (the
// router's limits): they belong to the default agent's block.
var agentOnlyDefault = []string{"max_concurrent", "queue_limit", "reply_timeout", "max_reply_bytes"}

// decodeAgents decodes the agent blocks into c.Agent (the default agent)
// and c.Agents (every agent, the default first).
func (c *Config) decodeAgents(d *decoder, blocks []*hcl.Block) {
	byName := map[string]*hcl.Block{}
	named := map[string]*Agent{}
	var order []string
	for _, b := range blocks {
		if len(b.Labels) > 1 {
			d.errorf(b.LabelRanges[1], "Extraneous label", "An agent block has at most one label, its name: agent \"NAME\" { … }.")
			continue
		}
		name := DefaultAgentName
		if len(b.Labels) == 1 {
			name = b.Labels[0]
			if !d.name(b, "agent") {
				continue
			}
		}
		if prev := byName[name]; prev != nil {
			d.errorf(b.DefRange, "Duplicate agent block",
				"Another block already defines the agent %q (an unnamed agent block is agent %q); the first is at %s.", name, DefaultAgentName, shortRange(prev.DefRange))
			continue
		}
		byName[name] = b
		a := c.Agent // the defaults
		if name != DefaultAgentName {
			a = defaults().Agent
		}
		a.Name = name
		a.DeclRange = b.DefRange
		rng := a.decode(d, b)
		c.checkModel(d, a.Model, rng)
		if name != DefaultAgentName {
			content, _ := b.Body.JustAttributes()
			for _, attr := range agentOnlyDefault {
				if at, ok := content[attr]; ok {
					d.errorf(at.Range, "Gateway-wide setting in a named agent",
						"%s applies to every agent: set it in the default agent's block (agent {} or agent %q).", attr, DefaultAgentName)
				}
			}
		}
		c.checkTools(d, b, &a)
		named[name] = &a
		order = append(order, name)
	}
	if a := named[DefaultAgentName]; a != nil {
		c.Agent = *a
	}
	c.Agent.Name = DefaultAgentName
	c.Agents = []*Agent{&c.Agent}
	for _, name := range order {
		if name != DefaultAgentName {
			c.Agents = append(c.Agents, named[name])
		}
	}
}

// checkTools checks that each tools pattern is SERVER.TOOL or SERVER.*
// with SERVER an mcp block.
func (c *Config) checkTools(d *decoder, b *hcl.Block, a *Agent) {
	content, _ := b.Body.JustAttributes()
	attr := content["tools"]
	for _, p := range a.Tools {
		server, tool, ok := strings.Cut(p, ".")
		switch {
		case !ok || server == "" || tool == "":
			d.errorf(attr.Range, "Invalid tool pattern", "tools hold \"SERVER.TOOL\" or \"SERVER.*\" (SERVER an mcp block), not %q.", p)
		case c.MCPByName(server) == nil:
			d.errorf(attr.Range, "Unknown MCP server", "tool %q names the MCP server %q, but there is no mcp %q block; the mcp blocks are %s.",
				p, server, server, list(c.mcpNames(), "and"))
		}
	}
}

// checkAgents checks that every platform's agent exists.
func (c *Config) checkAgents(d *decoder) {
	for _, p := range c.Platforms {
		if c.AgentByName(p.Agent) == nil {
			rng := p.AgentRange
			if rng.Filename == "" {
				rng = p.DeclRange
			}
			names := make([]string, 0, len(c.Agents))
			for _, a := range c.Agents {
				names = append(names, a.Name)
			}
			d.errorf(rng, "Unknown agent", "platform %q talks to the agent %q, but there is no agent %q block; the agents are %s.",
				p.Name, p.Agent, p.Agent, list(names, "and"))
		}
	}
}

func (c *Config) mcpNames() []string {
	names := make([]string, len(c.MCP))
	for i, m := range c.MCP {
		names[i] = m.Name
	}
	if len(names) == 0 {
		return []string{"none"}
	}
	return names
}

var mcpSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "command"}, {Name: "env"}, {Name: "url"}, {Name: "headers"}, {Name: "timeout"},
}}

// validMCPName: tools are named SERVER.TOOL, so no dot in SERVER.
var validMCPName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// decodeMCP decodes an mcp "NAME" block; nil when its name is unusable.
func decodeMCP(d *decoder, b *hcl.Block) *MCP {
	m := &MCP{Name: b.Labels[0], Timeout: DefaultMCPTimeout, DeclRange: b.DefRange}
	content, diags := b.Body.Content(mcpSchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	d.stringList(a, "command", &m.Command)
	d.stringMap(a, "env", &m.Env)
	urlAttr := d.str(a, "url", &m.URL)
	d.stringMap(a, "headers", &m.Headers)
	d.duration(a, "timeout", &m.Timeout)
	switch {
	case len(m.Command) == 0 && m.URL == "":
		d.errorf(b.DefRange, "Missing MCP server", "mcp %q needs command = [\"PROGRAM\", \"ARG\", …] (a stdio server) or url = \"http://…\" (streamable HTTP).", m.Name)
	case len(m.Command) > 0 && m.URL != "":
		d.errorf(urlAttr.Range, "Both command and url", "mcp %q sets both command and url: a server is one or the other.", m.Name)
	case m.URL != "" && !strings.HasPrefix(m.URL, "http://") && !strings.HasPrefix(m.URL, "https://"):
		d.errorf(urlAttr.Range, "Invalid url", "url must start with http:// or https://.")
	case len(m.Command) > 0 && m.Command[0] == "":
		d.errorf(a["command"].Range, "Invalid command", "command[0] is the program to run and must not be empty.")
	}
	if len(m.Env) > 0 && len(m.Command) == 0 {
		d.errorf(a["env"].Range, "env without command", "env is the environment of a stdio server (command); an HTTP server (url) takes headers.")
	}
	if len(m.Headers) > 0 && m.URL == "" {
		d.errorf(a["headers"].Range, "headers without url", "headers are sent to an HTTP server (url); a stdio server (command) takes env.")
	}
	if !validMCPName.MatchString(m.Name) {
		d.errorf(b.LabelRanges[0], "Invalid mcp name",
			"An mcp name may hold letters, digits, \"-\" and \"_\" (tools are named NAME.TOOL), and starts with a letter or digit; not %q.", m.Name)
		return nil
	}
	return m
}

// mcpView is an MCP block as it may be printed: env and header values
// replaced by SensitivePlaceholder.
type mcpView struct {
	Name    string            `json:"name"`
	Command []string          `json:"command,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	URL     string            `json:"url,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Timeout string            `json:"timeout"`
}

func redactValues(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k := range m {
		out[k] = SensitivePlaceholder
	}
	return out
}

// Format prints the block with its env and header values redacted,
// whatever the verb, so that no fmt or log call can leak them.
func (m MCP) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "%+v", m.view())
}

// String prints the block redacted.
func (m MCP) String() string { return fmt.Sprint(m) }

// GoString prints the block redacted.
func (m MCP) GoString() string { return "config.MCP" + fmt.Sprint(m) }

// MarshalJSON encodes the block redacted.
func (m MCP) MarshalJSON() ([]byte, error) {
	return json.Marshal(m.view())
}

func (m MCP) view() mcpView {
	return mcpView{Name: m.Name, Command: slices.Clone(m.Command), Env: redactValues(m.Env), URL: m.URL,
		Headers: redactValues(m.Headers), Timeout: m.Timeout.String()}
}
