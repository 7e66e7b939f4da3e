package shared

import (
	"github.com/hashicorp/go-plugin"
)

// ProtocolVersion is the platform plugin protocol version this package speaks.
const ProtocolVersion = 1

// PluginName is the name under which the platform plugin is dispensed.
const PluginName = "platform"

// Handshake is shared by the host and plugins. It is a UX feature, not a
// security one: a binary run by hand says it must be started by the gateway.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "GATEWAY_PLUGIN_COOKIE",
	MagicCookieValue: "b7e2d6c0-platform-plugin",
}

// VersionedPlugins maps each protocol version to the plugins it serves. The
// host passes it with no implementation; Serve fills in the plugin's.
func VersionedPlugins(impl Platform) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: &GRPCPlugin{Impl: impl}},
	}
}
