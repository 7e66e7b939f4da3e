package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"

	"github.com/plughost/gateway/host/admin"
)

// Load reads and decodes the configuration file at path. Diagnostics name
// the file as path was written (cleaned), so they read as the user typed it;
// Config.Path is absolute.
//
// The Config is returned together with error diagnostics, as complete as
// the errors allow, so that a validator can go on to check every platform
// block and report all problems at once; it must not be run. It is nil only
// when the file cannot be read or parsed.
func Load(path string) (*Config, hcl.Diagnostics) {
	path = filepath.Clean(path)
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read the configuration file",
			Detail:   fmt.Errorf("reading config: %w", err).Error(),
			Subject:  &hcl.Range{Filename: path},
		}}
	}
	return Parse(src, path)
}

// Parse decodes a configuration from src; filename names it in
// diagnostics, and relative paths in it resolve against its folder.
// See Load for what is returned alongside error diagnostics.
func Parse(src []byte, filename string) (*Config, hcl.Diagnostics) {
	return parse(src, filename, os.LookupEnv)
}

// parse is Parse with the environment as a parameter, for tests.
func parse(src []byte, filename string, lookupEnv func(string) (string, bool)) (*Config, hcl.Diagnostics) {
	abs, err := filepath.Abs(filename)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot resolve the configuration file's path",
			Detail:   fmt.Errorf("resolving %s: %w", filename, err).Error(),
			Subject:  &hcl.Range{Filename: filename},
		}}
	}
	file, diags := hclparse.NewParser().ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, diags
	}

	c := defaults()
	c.Path = abs
	c.Dir = filepath.Dir(abs)
	c.evalCtx = newEvalContext(lookupEnv)
	d := &decoder{ctx: c.evalCtx, diags: diags}
	c.decodeRoot(d, file.Body)
	c.resolvePaths()
	sortDiagnostics(d.diags)
	return c, d.diags
}

// rootSchema is the top level of a config file. Every block is optional.
var rootSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "gateway"},
		{Type: "provider", LabelNames: []string{"name"}},
		{Type: "mcp", LabelNames: []string{"name"}},
		{Type: "cache"},
		{Type: "store"},
		{Type: "platform", LabelNames: []string{"name"}},
		{Type: "cluster"},
	},
}

// decodeRoot decodes the file's blocks into c. The agent block is decoded
// last because its model names a provider.
func (c *Config) decodeRoot(d *decoder, body hcl.Body) {
	body, agents := splitAgentBlocks(body)
	content, diags := body.Content(rootSchema)
	d.diags = append(d.diags, diags...)

	seen := map[string]*hcl.Block{}
	for _, b := range content.Blocks {
		switch b.Type {
		case "gateway", "cache", "store", "cluster":
			if prev := seen[b.Type]; prev != nil {
				d.errorf(b.DefRange, "Duplicate "+b.Type+" block",
					"Only one %s block is allowed; the first is at %s.", b.Type, shortRange(prev.DefRange))
				continue
			}
			seen[b.Type] = b
		}
		switch b.Type {
		case "gateway":
			c.Gateway.decode(d, b.Body)
		case "cache":
			c.Cache.decode(d, b.Body)
		case "store":
			c.Store.decode(d, b.Body)
		case "cluster":
			c.Cluster = &Cluster{}
			c.Cluster.decode(d, b)
		case "mcp":
			if m := decodeMCP(d, b); m != nil && c.checkUnique(d, b, c.MCPByName(m.Name) != nil) {
				c.MCP = append(c.MCP, m)
			}
		case "provider":
			if p := decodeProvider(d, b); p != nil && c.checkUnique(d, b, c.Provider(p.Name) != nil) {
				c.Providers = append(c.Providers, p)
			}
		case "platform":
			if p := decodePlatform(d, b); p != nil && c.checkUnique(d, b, c.PlatformByName(p.Name) != nil) {
				c.Platforms = append(c.Platforms, p)
			}
		}
	}
	if c.Provider("echo") == nil {
		// The embedded default, so that the default model echo/echo works
		// with an empty file.
		c.Providers = append(c.Providers, &Provider{
			Name: "echo", Type: "echo",
			Timeout: DefaultProviderTimeout, MaxConnections: DefaultProviderMaxConnections,
		})
	}
	// The default model always names a provider: echo is implicit.
	c.decodeAgents(d, agents)
	c.checkAgents(d)
	c.checkCluster(d)
}

// checkUnique reports a second block of b's type with b's name.
func (c *Config) checkUnique(d *decoder, b *hcl.Block, taken bool) bool {
	if taken {
		d.errorf(b.LabelRanges[0], "Duplicate "+b.Type+" name",
			"Another %s block is already named %q; names must be unique.", b.Type, b.Labels[0])
	}
	return !taken
}

// checkModel checks that the agent's default model is PROVIDER/MODEL and
// names a provider of this file.
func (c *Config) checkModel(d *decoder, m string, rng hcl.Range) {
	provider, model, ok := strings.Cut(m, "/")
	switch {
	case !ok || provider == "" || model == "":
		d.errorf(rng, "Invalid model", "model must be PROVIDER/MODEL, such as \"echo/echo\" or \"openai/gpt-4o-mini\", not %q.", m)
	case c.Provider(provider) == nil:
		d.errorf(rng, "Unknown provider", "model %q names the provider %q, but there is no provider %q block; the providers are %s.",
			m, provider, provider, list(c.providerNames(), "and"))
	}
}

// providerNames lists the providers' names in file order.
func (c *Config) providerNames() []string {
	names := make([]string, len(c.Providers))
	for i, p := range c.Providers {
		names[i] = p.Name
	}
	return names
}

// resolvePaths makes the file's relative paths absolute against its folder.
func (c *Config) resolvePaths() {
	c.Gateway.StateDir = c.abs(c.Gateway.StateDir)
	c.Gateway.PluginDir = c.abs(c.Gateway.PluginDir)
	if admin.IsUnix(c.Gateway.Admin) {
		c.Gateway.Admin = c.abs(c.Gateway.Admin)
	}
}

// abs resolves p against the config file's folder.
func (c *Config) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// shortRange renders a range's start as file:line:col.
func shortRange(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}
