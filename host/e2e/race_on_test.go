//go:build race

package e2e

// raceEnabled: the tests run under -race, so the binaries they start are
// built with it too, and a data race in the host or a plugin fails the test.
const raceEnabled = true
