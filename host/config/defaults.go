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

	DefaultModel         = "echo/echo"
	DefaultHistoryLimit  = 40
	DefaultMaxConcurrent = 64
	DefaultQueueLimit    = 8
	DefaultReplyTimeout  = 5 * time.Minute

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
		},
		Agent: Agent{
			Model:         DefaultModel,
			HistoryLimit:  DefaultHistoryLimit,
			MaxConcurrent: DefaultMaxConcurrent,
			QueueLimit:    DefaultQueueLimit,
			ReplyTimeout:  DefaultReplyTimeout,
		},
		Cache: Cache{
			MaxAgents: DefaultMaxAgents,
			IdleTTL:   DefaultIdleTTL,
		},
		Store: Store{Type: "bbolt"},
	}
}
