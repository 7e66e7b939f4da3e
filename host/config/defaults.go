package config

import "time"

// The defaults of every setting the gateway decodes, written once: the host
// hands the packages the values of the decoded Config. (Those packages may
// not import this one; the zero-value fallbacks they keep for settings
// built by hand in tests are checked equal to these by a test in
// host/gateway.) Zero is never a stand-in for "default": an attribute whose
// zero has no meaning is refused by validation (at least 1, a positive
// duration), and where zero has one it is documented in the README
// (history_limit = 0: no history; queue_limit = 0: no queue).
const (
	DefaultStateDir           = ".gateway"
	DefaultPluginDir          = "bin/plugins"
	DefaultAdmin              = "127.0.0.1:8787"
	DefaultLogLevel           = "info"
	DefaultLogFormat          = "text"
	DefaultShutdownTimeout    = 30 * time.Second
	DefaultPluginStartTimeout = 10 * time.Second
	// DefaultAdminMaxConnections: the admin endpoint is for operators and
	// monitoring, a few connections, far below the descriptor limit.
	DefaultAdminMaxConnections = 32

	DefaultModel         = "echo/echo"
	DefaultHistoryLimit  = 40
	DefaultMaxConcurrent = 64
	DefaultQueueLimit    = 8
	DefaultReplyTimeout  = 5 * time.Minute
	// DefaultMaxReplyBytes is max_reply_bytes: about what a model writes in
	// 16k tokens, the output cap of most chat models. Longer replies are
	// runaways (a loop, a dumped file) that every later turn would resend
	// as history, and already take 33 Discord messages.
	DefaultMaxReplyBytes = 64 << 10

	DefaultMaxToolRounds = 8
	// DefaultMCPTimeout bounds one tool call of an mcp block.
	DefaultMCPTimeout = 60 * time.Second

	DefaultMaxAgents = 128
	DefaultIdleTTL   = time.Hour

	DefaultProviderTimeout        = 60 * time.Second
	DefaultProviderMaxConnections = 32
)

// DefaultRestart is a platform's restart policy when its block sets none.
var DefaultRestart = Restart{
	InitialBackoff: time.Second,
	MaxBackoff:     2 * time.Minute,
	MaxFailures:    5,
	FailureWindow:  time.Minute,
	// Noticed within 10 s, killed within 20 s (issue 21).
	LivenessInterval: 5 * time.Second,
	LivenessTimeout:  5 * time.Second,
	LivenessFailures: 3,
}

// defaults returns the configuration of an empty file, less the implicit
// echo provider (added after the file's providers are known).
func defaults() *Config {
	return &Config{
		Gateway: Gateway{
			StateDir:           DefaultStateDir,
			PluginDir:          DefaultPluginDir,
			Admin:              DefaultAdmin,
			LogLevel:           DefaultLogLevel,
			LogFormat:          DefaultLogFormat,
			ShutdownTimeout:    DefaultShutdownTimeout,
			PluginStartTimeout: DefaultPluginStartTimeout,

			AdminMaxConnections: DefaultAdminMaxConnections,
		},
		Agent: Agent{
			Name:          DefaultAgentName,
			MaxToolRounds: DefaultMaxToolRounds,
			Model:         DefaultModel,
			HistoryLimit:  DefaultHistoryLimit,
			MaxConcurrent: DefaultMaxConcurrent,
			QueueLimit:    DefaultQueueLimit,
			ReplyTimeout:  DefaultReplyTimeout,
			MaxReplyBytes: DefaultMaxReplyBytes,
		},
		Cache: Cache{
			MaxAgents: DefaultMaxAgents,
			IdleTTL:   DefaultIdleTTL,
		},
		Store: Store{Type: StoreBolt},
	}
}
