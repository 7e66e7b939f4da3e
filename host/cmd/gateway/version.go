package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/plughost/gateway/host/version"
)

func versionCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "gateway %s (commit %s, %s)\nplugin protocol versions: %v\n",
		version.Version, version.Commit, runtime.Version(), version.ProtocolVersions)
	return nil
}
