package shared

// Version is the version of the build, stamped in by the Makefile with
// -ldflags "-X github.com/plughost/gateway/shared.Version=…" like the
// host's; plugins report it in Describe.
var Version = "dev"
