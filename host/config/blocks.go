package config

import (
	"encoding/hex"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/plughost/gateway/host/admin"
	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/shared/webguard"
)

var gatewaySchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "state_dir"}, {Name: "plugin_dir"}, {Name: "admin"},
	{Name: "log_level"}, {Name: "log_format"}, {Name: "shutdown_timeout"},
	{Name: "plugin_start_timeout"}, {Name: "admin_max_connections"},
	{Name: "allowed_hosts"}, {Name: "allowed_origins"}, {Name: "allow_unauthenticated"},
}}

// decode decodes the gateway block over the defaults in g.
func (g *Gateway) decode(d *decoder, body hcl.Body) {
	content, diags := body.Content(gatewaySchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	d.nonEmpty(a, "state_dir", &g.StateDir)
	d.nonEmpty(a, "plugin_dir", &g.PluginDir)
	d.nonEmpty(a, "admin", &g.Admin)
	d.oneOf(a, "log_level", &g.LogLevel, "trace", "debug", "info", "warn", "error")
	d.oneOf(a, "log_format", &g.LogFormat, "text", "json")
	d.duration(a, "shutdown_timeout", &g.ShutdownTimeout)
	d.duration(a, "plugin_start_timeout", &g.PluginStartTimeout)
	d.integer(a, "admin_max_connections", 1, &g.AdminMaxConnections)
	d.stringList(a, "allowed_hosts", &g.AllowedHosts)
	d.stringList(a, "allowed_origins", &g.AllowedOrigins)
	d.boolean(a, "allow_unauthenticated", &g.AllowUnauthenticated)
	if attr := a["allowed_origins"]; attr != nil {
		if _, err := webguard.Wrap(http.NotFoundHandler(), webguard.Options{AllowedOrigins: g.AllowedOrigins}); err != nil {
			d.errorf(attr.Range, "Invalid allowed_origins", "%v; write origins as \"https://host[:port]\".", err)
		}
	}
	// The admin endpoint has no authentication: reachable from other
	// machines only when the operator says so.
	if attr := a["admin"]; attr != nil && !admin.IsUnix(g.Admin) && !webguard.Loopback(g.Admin) && !g.AllowUnauthenticated {
		d.errorf(attr.Range, "Admin endpoint open to the network",
			"admin %q is reachable from other machines, and the admin endpoint (status, metrics) has no authentication. Listen on 127.0.0.1 or a unix socket, or set allow_unauthenticated = true in the gateway block to serve it to everyone who can reach it.", g.Admin)
	}
}

var cacheSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "max_agents"}, {Name: "idle_ttl"},
}}

// decode decodes the cache block over the defaults in c.
func (c *Cache) decode(d *decoder, body hcl.Body) {
	content, diags := body.Content(cacheSchema)
	d.diags = append(d.diags, diags...)
	d.integer(content.Attributes, "max_agents", 1, &c.MaxAgents)
	d.duration(content.Attributes, "idle_ttl", &c.IdleTTL)
}

var storeSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "type"}, {Name: "dsn"}, {Name: "sync"},
}}

// decode decodes the store block over the defaults in s.
func (s *Store) decode(d *decoder, body hcl.Body) {
	content, diags := body.Content(storeSchema)
	d.diags = append(d.diags, diags...)
	attrs := content.Attributes
	d.oneOf(attrs, "type", &s.Type, StoreBolt, StorePostgres, "bbolt")
	if s.Type == "bbolt" {
		s.Type = StoreBolt
	}
	dsn := d.str(attrs, "dsn", &s.DSN)
	switch {
	case dsn != nil && s.DSN != "" && s.Type == StoreBolt:
		d.errorf(dsn.Range, "dsn needs a networked store", `type = "bolt" keeps the store in state_dir and takes no dsn.`)
	case s.Type == StorePostgres && s.DSN == "":
		rng := body.MissingItemRange()
		if dsn != nil {
			rng = dsn.Range
		}
		d.errorf(rng, "Missing dsn",
			"store type \"postgres\" needs dsn, the connection string, such as dsn = env(\"GATEWAY_DATABASE_URL\") with GATEWAY_DATABASE_URL=postgres://gateway:PASSWORD@db.example:5432/gateway.")
	}
	var sync string
	a := d.str(attrs, "sync", &sync)
	if a == nil || sync == "always" {
		return
	}
	if s.Type == StorePostgres {
		d.errorf(a.Range, "sync is for the bbolt store",
			`PostgreSQL commits as the server's synchronous_commit says (on by default: every turn is durable before its reply); leave sync out, or set synchronous_commit for the gateway's user on the server.`)
		return
	}
	iv, err := time.ParseDuration(sync)
	if err != nil || iv <= 0 {
		d.errorf(a.Range, "Invalid sync", `sync is "always" (every turn is fsynced before its reply) or a positive duration such as "100ms" (turns are written before their reply and fsynced within it); got %q.`, sync)
		return
	}
	s.SyncInterval = iv
}

var agentSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "model"}, {Name: "system_prompt"}, {Name: "history_limit"},
	{Name: "max_concurrent"}, {Name: "queue_limit"}, {Name: "reply_timeout"},
	{Name: "max_reply_bytes"}, {Name: "tools"}, {Name: "max_tool_rounds"},
}, Blocks: []hcl.BlockHeaderSchema{{Type: "limits"}}}

// decode decodes the agent block over the defaults in a and returns the
// range to report a bad model at.
func (a *Agent) decode(d *decoder, block *hcl.Block) hcl.Range {
	content, diags := block.Body.Content(agentSchema)
	d.diags = append(d.diags, diags...)
	attrs := content.Attributes
	d.str(attrs, "model", &a.Model)
	d.str(attrs, "system_prompt", &a.SystemPrompt)
	d.integer(attrs, "history_limit", 0, &a.HistoryLimit)
	d.integer(attrs, "max_concurrent", 1, &a.MaxConcurrent)
	d.integer(attrs, "queue_limit", 0, &a.QueueLimit)
	d.duration(attrs, "reply_timeout", &a.ReplyTimeout)
	d.integer(attrs, "max_reply_bytes", 1024, &a.MaxReplyBytes)
	d.stringList(attrs, "tools", &a.Tools)
	d.integer(attrs, "max_tool_rounds", 1, &a.MaxToolRounds)
	if a.MaxReplyBytes > MaxReplyBytesLimit {
		d.errorf(attrs["max_reply_bytes"].Range, "max_reply_bytes too large",
			"max_reply_bytes is at most %d (4 MiB, within the plugin protocol's message size), not %d.", MaxReplyBytesLimit, a.MaxReplyBytes)
	}
	if lb := d.onlyBlock(content.Blocks, "limits", "the agent block"); lb != nil {
		a.Limits.decode(d, lb.Body)
	}
	if m, ok := attrs["model"]; ok {
		return m.Range
	}
	return block.DefRange
}

var providerSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "type"}, {Name: "base_url"}, {Name: "api_key"},
	{Name: "timeout"}, {Name: "max_connections"}, {Name: "headers"},
	{Name: "stream_idle_timeout"},
}}

// providerTypes are the values of a provider's type.
var providerTypes = []string{"echo", "openai"}

// decodeProvider decodes a provider "NAME" block; nil when its name is
// unusable.
func decodeProvider(d *decoder, b *hcl.Block) *Provider {
	p := &Provider{
		Name:           b.Labels[0],
		Timeout:        DefaultProviderTimeout,
		MaxConnections: DefaultProviderMaxConnections,
	}
	content, diags := b.Body.Content(providerSchema)
	d.diags = append(d.diags, diags...)
	attrs := content.Attributes
	nameOK := d.name(b, "provider")

	typeAttr := attrs["type"]
	if typeAttr == nil {
		for _, t := range providerTypes {
			if p.Name == t {
				p.Type = t
			}
		}
		if p.Type == "" {
			d.errorf(b.DefRange, "Missing provider type",
				"provider %q needs a type: %s.", p.Name, orList(providerTypes))
		}
	}
	d.oneOf(attrs, "type", &p.Type, providerTypes...)
	reported := len(d.diags)
	baseURL := d.str(attrs, "base_url", &p.BaseURL)
	baseURLFailed := len(d.diags) > reported
	d.str(attrs, "api_key", &p.APIKey)
	d.duration(attrs, "timeout", &p.Timeout)
	d.integer(attrs, "max_connections", 1, &p.MaxConnections)
	d.duration(attrs, "stream_idle_timeout", &p.StreamIdleTimeout)
	d.stringMap(attrs, "headers", &p.Headers)

	switch {
	case baseURLFailed:
		// base_url itself is wrong, and said so.
	case p.Type == "openai" && p.BaseURL == "":
		rng := b.DefRange
		if a := attrs["base_url"]; a != nil {
			rng = a.Range
		}
		d.errorf(rng, "Missing base_url",
			"provider %q of type \"openai\" needs base_url, such as \"https://api.openai.com/v1\".", p.Name)
	case p.BaseURL != "":
		if u, err := url.Parse(p.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.errorf(baseURL.Range, "Invalid base_url",
				"base_url must be an http:// or https:// URL, such as \"https://api.openai.com/v1\", not %q.", provider.RedactURL(p.BaseURL))
		}
	}
	if !nameOK {
		return nil
	}
	return p
}

var platformSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "plugin"}, {Name: "enabled"}, {Name: "session_scope"}, {Name: "sha256"},
		{Name: "agent"}, {Name: "shards"}, {Name: "placement"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "config"}, {Type: "restart"}, {Type: "access"}},
}

var restartSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "initial_backoff"}, {Name: "max_backoff"}, {Name: "max_failures"}, {Name: "failure_window"},
	{Name: "liveness_interval"}, {Name: "liveness_timeout"}, {Name: "liveness_failures"},
}}

// decodePlatform decodes a platform "NAME" block, leaving its config block
// undecoded; nil when its name is unusable.
func decodePlatform(d *decoder, b *hcl.Block) *Platform {
	p := &Platform{
		Name:         b.Labels[0],
		Plugin:       b.Labels[0],
		Enabled:      true,
		SessionScope: "conversation",
		Agent:        DefaultAgentName,
		Restart:      DefaultRestart,
		DeclRange:    b.DefRange,
		Shards:       1,
		Placement:    PlacementOne,
	}
	content, diags := b.Body.Content(platformSchema)
	d.diags = append(d.diags, diags...)
	attrs := content.Attributes
	nameOK := d.name(b, "platform")

	if plugin := d.str(attrs, "plugin", &p.Plugin); plugin != nil && !validName.MatchString(p.Plugin) {
		d.errorf(plugin.Range, "Invalid plugin name",
			"plugin names the binary gateway-plugin-NAME in plugin_dir: letters, digits, \"-\", \"_\" and \".\", not %q.", p.Plugin)
	}
	d.boolean(attrs, "enabled", &p.Enabled)
	d.oneOf(attrs, "session_scope", &p.SessionScope, "conversation", "user")
	d.integer(attrs, "shards", 1, &p.Shards)
	if a := attrs["shards"]; a != nil && p.Shards > MaxShards {
		d.errorf(a.Range, "Too many shards", "shards is at most %d, not %d.", MaxShards, p.Shards)
	}
	d.oneOf(attrs, "placement", &p.Placement, PlacementOne, PlacementAll)
	if a := attrs["placement"]; a != nil && p.Placement == PlacementAll && p.Shards > 1 {
		d.errorf(a.Range, "Shards run on one host each",
			"placement = \"all\" runs the platform on every host, so each of its %d shards would answer every message several times: use placement = \"one\" (the default) with shards.", p.Shards)
	}
	p.Agent = DefaultAgentName
	if attr := d.str(attrs, "agent", &p.Agent); attr != nil {
		p.AgentRange = attr.Range
	}
	if sum := d.str(attrs, "sha256", &p.SHA256); sum != nil {
		p.SHA256 = strings.ToLower(p.SHA256)
		if _, err := hex.DecodeString(p.SHA256); err != nil || len(p.SHA256) != 64 {
			d.errorf(sum.Range, "Invalid sha256",
				"sha256 must be 64 hexadecimal digits, as printed by sha256sum, not %q.", p.SHA256)
		}
	}

	if ab := d.onlyBlock(content.Blocks, "access", "a platform"); ab != nil {
		p.Access.decode(d, ab.Body)
	}
	if p.Access.DM == "" {
		p.Access.DM = DMDefault(p.Plugin)
	}
	var config, restart *hcl.Block
	for _, blk := range content.Blocks {
		if blk.Type == "access" {
			continue
		}
		prev := &config
		if blk.Type == "restart" {
			prev = &restart
		}
		if *prev != nil {
			d.errorf(blk.DefRange, "Duplicate "+blk.Type+" block",
				"Only one %s block is allowed in a platform; the first is at %s.", blk.Type, shortRange((*prev).DefRange))
			continue
		}
		*prev = blk
	}
	if config != nil {
		p.Body = config.Body
		p.ConfigRange = config.DefRange
	}
	if restart != nil {
		p.Restart.decode(d, restart.Body)
	}
	if !nameOK {
		return nil
	}
	return p
}

// decode decodes a restart block over the defaults in r.
func (r *Restart) decode(d *decoder, body hcl.Body) {
	content, diags := body.Content(restartSchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	d.duration(a, "initial_backoff", &r.InitialBackoff)
	d.duration(a, "max_backoff", &r.MaxBackoff)
	d.integer(a, "max_failures", 1, &r.MaxFailures)
	d.duration(a, "failure_window", &r.FailureWindow)
	d.duration(a, "liveness_interval", &r.LivenessInterval)
	d.duration(a, "liveness_timeout", &r.LivenessTimeout)
	d.integer(a, "liveness_failures", 1, &r.LivenessFailures)
	if mb := a["max_backoff"]; mb != nil && r.MaxBackoff < r.InitialBackoff {
		d.errorf(mb.Range, "Invalid max_backoff",
			"max_backoff (%s) must not be shorter than initial_backoff (%s).", r.MaxBackoff, r.InitialBackoff)
	}
}

// validName is what a provider, platform or plugin may be called: names
// appear in models (PROVIDER/MODEL), file names and log lines.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// name checks a block's name label.
func (d *decoder) name(b *hcl.Block, kind string) bool {
	if validName.MatchString(b.Labels[0]) {
		return true
	}
	d.errorf(b.LabelRanges[0], "Invalid "+kind+" name",
		"A %s name may hold letters, digits, \"-\", \"_\" and \".\", and starts with a letter or digit; not %q.", kind, b.Labels[0])
	return false
}

// nonEmpty decodes a string attribute that must not be empty.
func (d *decoder) nonEmpty(attrs hcl.Attributes, name string, dst *string) {
	var s string
	switch attr := d.str(attrs, name, &s); {
	case attr == nil:
	case s == "":
		d.errorf(attr.Range, "Empty "+name, "%s must not be empty; leave it out for the default.", name)
	default:
		*dst = s
	}
}
