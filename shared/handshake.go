package shared

import (
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// ProtocolVersion is the newest platform plugin protocol version this
// package speaks; go-plugin negotiates the highest version both sides have.
const ProtocolVersion = 2

// ProtocolVersions lists every protocol version the host accepts, oldest
// first: a plugin built against protocol 1 still loads (without streamed
// replies or durable acknowledgements; see the README).
var ProtocolVersions = []int{1, 2}

// PluginName is the name under which the platform plugin is dispensed.
const PluginName = "platform"

// Handshake is shared by the host and plugins. It is a UX feature, not a
// security one: a binary run by hand says it must be started by the gateway.
// Its ProtocolVersion is only the fallback for a peer that sends no list of
// versions; VersionedPlugins is what is negotiated.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "GATEWAY_PLUGIN_COOKIE",
	MagicCookieValue: "b7e2d6c0-platform-plugin",
}

// VersionedPlugins maps each protocol version to the plugins it serves. The
// host passes it with no implementation; Serve fills in the plugin's.
func VersionedPlugins(impl Platform) map[int]plugin.PluginSet {
	return versionedPlugins(impl, nil)
}

func versionedPlugins(impl Platform, logger hclog.Logger) map[int]plugin.PluginSet {
	v1 := &GRPCPlugin{Impl: impl, Logger: logger}
	return map[int]plugin.PluginSet{
		1: {PluginName: v1},
		2: {PluginName: &GRPCPluginV2{GRPCPlugin: *v1}},
	}
}

// ServeV1 is Serve for protocol 1 only: what a plugin built before protocol
// 2 serves. It exists so the host's tests can run such a plugin.
func ServeV1(impl Platform) {
	serve(impl, func(impl Platform, logger hclog.Logger) map[int]plugin.PluginSet {
		return map[int]plugin.PluginSet{1: {PluginName: &GRPCPlugin{Impl: impl, Logger: logger}}}
	})
}
