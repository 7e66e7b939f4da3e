package gateway

import (
	"testing"

	"github.com/plughost/gateway/host/admin"
	"github.com/plughost/gateway/host/agent"
	"github.com/plughost/gateway/host/config"
	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/router"
	"github.com/plughost/gateway/host/supervisor"
)

// The defaults a user sees are host/config's: the host always hands the
// packages the values of the decoded config. The packages keep zero-value
// fallbacks only for settings built by hand (tests) — they may not import
// host/config — and this keeps those fallbacks equal to config's, so no
// second default can drift away from the first.
func TestPackageFallbacksAreTheConfigDefaults(t *testing.T) {
	for _, c := range []struct {
		name          string
		pkg, inConfig any
	}{
		{"agent model", agent.DefaultModel, config.DefaultModel},
		{"agent max_agents", agent.DefaultMaxAgents, config.DefaultMaxAgents},
		{"agent idle_ttl", agent.DefaultIdleTTL, config.DefaultIdleTTL},
		{"agent max_reply_bytes", agent.DefaultMaxReplyBytes, config.DefaultMaxReplyBytes},
		{"provider timeout", provider.DefaultTimeout, config.DefaultProviderTimeout},
		{"provider max_connections", provider.DefaultMaxConnections, config.DefaultProviderMaxConnections},
		{"provider max_tool_rounds", provider.DefaultMaxToolRounds, config.DefaultMaxToolRounds},
		{"agent name", agent.DefaultAgent, config.DefaultAgentName},
		{"router max_concurrent", router.DefaultMaxConcurrent, config.DefaultMaxConcurrent},
		{"router reply_timeout", router.DefaultReplyTimeout, config.DefaultReplyTimeout},
		{"supervisor plugin_start_timeout", supervisor.DefaultStartTimeout, config.DefaultPluginStartTimeout},
		{"admin admin_max_connections", admin.DefaultMaxConnections, config.DefaultAdminMaxConnections},
	} {
		if c.pkg != c.inConfig {
			t.Errorf("%s: the package falls back to %v, the config's default is %v", c.name, c.pkg, c.inConfig)
		}
	}
}
