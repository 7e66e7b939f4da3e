// Package config loads and validates the gateway's HCL configuration.
package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/plughost/gateway/shared"
)

// Config is a loaded configuration file.
type Config struct {
	// Path is the absolute path of the file it was loaded from.
	Path string
	// Dir is the folder of Path; relative paths in the file resolve against it.
	Dir string

	Gateway   Gateway
	Providers []*Provider // in file order; names are unique
	// Agent is the default agent ("default", or the unnamed agent block);
	// its block also holds the gateway-wide reply limits.
	Agent Agent
	// Agents are every agent, the default first, then in file order.
	Agents    []*Agent
	MCP       []*MCP // mcp blocks, in file order; names are unique
	Cache     Cache
	Store     Store
	Platforms []*Platform // in file order; names are unique
	// Cluster is the cluster block; nil when absent (one host).
	Cluster *Cluster

	// evalCtx holds the expression functions (env, …) that platform config
	// blocks are evaluated with later, by DecodePlatformConfig.
	evalCtx *hcl.EvalContext
}

// Gateway is the gateway block.
type Gateway struct {
	StateDir        string        // absolute; default ".gateway"
	PluginDir       string        // absolute; default "bin/plugins"
	Admin           string        // "127.0.0.1:8787", or an absolute unix socket path
	LogLevel        string        // trace|debug|info|warn|error; default "info"
	LogFormat       string        // text|json; default "text"
	ShutdownTimeout time.Duration // default 30s
	// PluginStartTimeout bounds a plugin's start-up handshake; default 10s.
	PluginStartTimeout time.Duration
	// AdminMaxConnections bounds the admin endpoint's open connections;
	// default 32, far below the host's file-descriptor limit.
	AdminMaxConnections int
	// AllowedHosts are further Host header names the admin endpoint
	// answers to (IP addresses and localhost always pass).
	AllowedHosts []string
	// AllowedOrigins are the web origins whose pages may call the admin
	// endpoint cross-origin; none by default.
	AllowedOrigins []string
	// AllowUnauthenticated lets admin listen on a non-loopback address:
	// the admin endpoint has no authentication.
	AllowUnauthenticated bool
}

// Provider is a provider "NAME" block.
type Provider struct {
	Name           string
	Type           string // "echo" or "openai"; default: Name when that is a type
	BaseURL        string
	APIKey         string            // sensitive: never logged or printed
	Timeout        time.Duration     // per request, from when it has a connection; default 60s
	MaxConnections int               // default 32
	Headers        map[string]string // extra request headers
	// StreamIdleTimeout bounds the pause between two pieces of a streamed
	// reply; zero means Timeout.
	StreamIdleTimeout time.Duration
}

// Agent is an agent block: agent "NAME" {}, or agent {} for the default.
type Agent struct {
	Name         string // DefaultAgentName for the unnamed block
	Model        string // PROVIDER/MODEL; default "echo/echo"
	SystemPrompt string
	HistoryLimit int // default 40
	// Tools are the MCP tools the agent may call: "SERVER.TOOL" or
	// "SERVER.*".
	Tools []string
	// MaxToolRounds bounds the rounds of tool calls in one reply; default 8.
	MaxToolRounds int
	// DeclRange is where the block starts; zero for the implicit default.
	DeclRange hcl.Range
	// MaxConcurrent bounds how many sessions produce replies at once; default 64.
	MaxConcurrent int
	// QueueLimit bounds the messages waiting behind a busy session; default 8.
	QueueLimit int
	// ReplyTimeout bounds one reply; default 5m.
	ReplyTimeout time.Duration
	// MaxReplyBytes caps a reply where the agent produces it: a longer one
	// is cut at a line or word boundary and ends with a note. Default
	// DefaultMaxReplyBytes, at most MaxReplyBytesLimit.
	MaxReplyBytes int
	// Limits are the per-user limits of the agent's limits block.
	Limits Limits
}

// Store is the store block: where sessions and taken message ids are kept
// and how durably. One block for every store type.
type Store struct {
	// Type is the engine: "bolt" (the default, a bbolt file in state_dir;
	// "bbolt" is read as "bolt") or "postgres".
	Type string
	// DSN is the connection string of a networked store (sensitive: never
	// printed); empty for bbolt.
	DSN string
	// SyncInterval is 0 for sync = "always" (a reply is sent only after
	// its turn is fsynced), else sync's duration: the turn is written
	// before the reply and fsynced within SyncInterval.
	SyncInterval time.Duration
}

// MaxReplyBytesLimit is the largest max_reply_bytes: a reply, with the
// note and the rest of its message, stays within one plugin protocol
// message.
const MaxReplyBytesLimit = shared.MaxReplyBytesLimit

// Cache is the cache block.
type Cache struct {
	MaxAgents int           // default 128
	IdleTTL   time.Duration // default 1h
}

// Platform is a platform "NAME" block.
type Platform struct {
	Name    string
	Plugin  string // runs PluginDir/gateway-plugin-PLUGIN; default: Name
	Enabled bool   // default true
	// SessionScope is "conversation" (default: one session per channel or
	// thread) or "user" (one session per user in group chats).
	SessionScope string
	// Agent is the agent the platform's messages go to; default "default".
	Agent string
	// AgentRange is where agent = "…" is written; zero when absent.
	AgentRange hcl.Range
	// SHA256 is the expected hex checksum of the plugin binary; empty for none.
	SHA256  string
	Restart Restart
	// Shards is how many shards the platform runs, each its own plugin
	// process told "shard i of Shards" (Discord); default 1.
	Shards int
	// Placement is "one" (default: one host of the cluster runs each shard)
	// or "all" (every host runs it).
	Placement string
	// Access is the platform's access block; DM is always set (its
	// default is DMDefault(Plugin)).
	Access Access

	// Body is the platform's config {} block, decoded later against the
	// schema its plugin describes (DecodePlatformConfig). Nil when absent.
	Body hcl.Body
	// DeclRange is where the platform block starts, for diagnostics.
	DeclRange hcl.Range
	// ConfigRange is where the config {} block starts; zero when absent.
	ConfigRange hcl.Range
}

// Restart is a platform's restart block: capped, jittered exponential
// backoff and a crash-loop breaker.
type Restart struct {
	InitialBackoff time.Duration // default 1s
	MaxBackoff     time.Duration // default 2m
	// MaxFailures failures within FailureWindow trip the breaker: the
	// platform is marked failed. Defaults 5 and 1m.
	MaxFailures   int
	FailureWindow time.Duration
	// LivenessInterval is how often the host pings the plugin; default 5s.
	LivenessInterval time.Duration
	// LivenessTimeout bounds each ping; default 5s.
	LivenessTimeout time.Duration
	// LivenessFailures missed pings in a row get the plugin killed and
	// restarted (the first one makes it degraded); default 3.
	LivenessFailures int
}

// PluginPath returns the path of the platform's plugin binary.
func (c *Config) PluginPath(p *Platform) string {
	return c.Gateway.PluginDir + "/gateway-plugin-" + p.Plugin
}

// Provider returns the provider named name, or nil.
func (c *Config) Provider(name string) *Provider {
	for _, p := range c.Providers {
		if p.Name == name {
			return p
		}
	}
	return nil
}
