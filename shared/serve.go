package shared

import (
	"context"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// EnvLogLevel is set by the host to the plugin's initial log level.
const EnvLogLevel = "GATEWAY_PLUGIN_LOG_LEVEL"

// parentPollInterval is how often a plugin checks that its host is alive.
const parentPollInterval = 200 * time.Millisecond

// Serve runs impl as a gateway platform plugin. It never returns: the process
// exits when the host stops it, or soon after the host process is gone. Write
// nothing to stdout before calling it: stdout carries the handshake.
func Serve(impl Platform) {
	serve(impl, versionedPlugins)
}

func serve(impl Platform, plugins func(Platform, hclog.Logger) map[int]plugin.PluginSet) {
	logger := hclog.New(&hclog.LoggerOptions{
		Level:      hclog.LevelFromString(os.Getenv(EnvLogLevel)),
		Output:     os.Stderr,
		JSONFormat: true, // go-plugin merges JSON lines into the host's log
	})
	go watchParent(impl, logger)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: plugins(impl, logger),
		GRPCServer:       newGRPCServer,
		Logger:           logger,
	})
	os.Exit(0)
}

// watchParent exits the plugin when the host is gone. The host also sets
// Pdeathsig, but that only covers Linux and a host thread's death; polling
// the parent PID covers every way a host can vanish.
func watchParent(impl Platform, logger hclog.Logger) {
	parent := os.Getppid()
	if parent <= 1 {
		return // started by init or by hand: nothing to watch
	}
	t := time.NewTicker(parentPollInterval)
	defer t.Stop()
	for range t.C {
		if os.Getppid() == parent {
			continue
		}
		logger.Warn("gateway host is gone; stopping", "host_pid", parent)
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		_ = impl.Stop(ctx)
		cancel()
		os.Exit(2)
	}
}
