// Package version holds the build's version, set with -ldflags at build time.
package version

import "github.com/plughost/gateway/shared"

// Version is the release version, or "dev".
var Version = "dev"

// Commit is the source commit the binary was built from.
var Commit = "unknown"

// ProtocolVersions lists the plugin protocol versions this host speaks.
var ProtocolVersions = shared.ProtocolVersions
