// Package e2e holds the end-to-end tests: they build the real gateway and
// plugin binaries (and the misbehaving ones in testdata/plugins), run the
// real host against them as processes, and talk to it over HTTP.
package e2e
