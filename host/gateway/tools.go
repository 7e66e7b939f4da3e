package gateway

import (
	"context"
	"encoding/json"

	"github.com/plughost/gateway/host/agent"
	"github.com/plughost/gateway/host/config"
	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/tools"
)

// toolSource gives agents the MCP manager's tools.
type toolSource struct{ m *tools.Manager }

var (
	_ agent.ToolSource = toolSource{}
	_ provider.Toolbox = toolbox{}
)

// Toolbox implements agent.ToolSource.
func (s toolSource) Toolbox(patterns []string) (provider.Toolbox, []string) {
	ts := s.m.Toolset(patterns)
	return toolbox{ts}, ts.Unavailable
}

// toolbox is a tools.Toolset as the provider takes it.
type toolbox struct{ ts *tools.Toolset }

// Functions implements provider.Toolbox.
func (b toolbox) Functions() []provider.Function {
	fns := b.ts.Functions()
	out := make([]provider.Function, 0, len(fns))
	for _, f := range fns {
		out = append(out, provider.Function{Name: f.Name, Description: f.Description, Parameters: f.Parameters})
	}
	return out
}

// Call implements provider.Toolbox.
func (b toolbox) Call(ctx context.Context, function string, args json.RawMessage) (string, bool, error) {
	return b.ts.Call(ctx, function, args)
}

// mcpConfigs are the mcp blocks as the tools manager takes them.
func mcpConfigs(cfg *config.Config) []tools.ServerConfig {
	out := make([]tools.ServerConfig, 0, len(cfg.MCP))
	for _, m := range cfg.MCP {
		out = append(out, tools.ServerConfig{
			Name: m.Name, Command: m.Command, Env: m.Env, URL: m.URL, Headers: m.Headers, Timeout: m.Timeout,
		})
	}
	return out
}
