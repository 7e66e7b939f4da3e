package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/host/config"
	"github.com/plughost/gateway/host/supervisor"
	"github.com/plughost/gateway/shared"
)

// configFlag adds -config to fs.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "config file (default $GATEWAY_CONFIG, else ./config.hcl)")
}

// configPath resolves which config file to use.
func configPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if env := os.Getenv("GATEWAY_CONFIG"); env != "" {
		return env
	}
	return "config.hcl"
}

// loadConfig loads the config file, or returns an error that prints its
// diagnostics one per line as FILE:LINE:COL: message.
func loadConfig(flagValue string) (*config.Config, error) {
	path := configPath(flagValue)
	cfg, diags := config.Load(path)
	if diags.HasErrors() {
		return nil, exitf(1, "invalid config:\n%s", config.FormatDiagnostics(diags))
	}
	return cfg, nil
}

// loadConfigForControl loads the config for commands that only need to find
// the running gateway (status, stop, reload): errors elsewhere in the file
// are shown as a warning, not fatal, as long as the gateway block could be
// read — an operator must be able to stop or reload a gateway whose config
// file is being edited.
func loadConfigForControl(flagValue string, stderr io.Writer) (*config.Config, error) {
	path := configPath(flagValue)
	cfg, diags := config.Load(path)
	if !diags.HasErrors() {
		return cfg, nil
	}
	if cfg == nil || cfg.Gateway.StateDir == "" {
		return nil, exitf(1, "invalid config:\n%s", config.FormatDiagnostics(diags))
	}
	fmt.Fprintf(stderr, "warning: %s has errors (the running gateway keeps its config until they are fixed):\n%s\n", path, config.FormatDiagnostics(diags))
	return cfg, nil
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("gateway "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args, mapping -h to a clean exit and bad flags to 2.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return &exitError{code: 0}
	}
	if err != nil {
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return exitf(2, "unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// newLogger returns the host's root logger, named "host"; components log
// as host.NAME and plugins as plugin.NAME.
func newLogger(g config.Gateway, out io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "host",
		Level:      hclog.LevelFromString(g.LogLevel),
		JSONFormat: g.LogFormat == "json",
		Output:     out,
	})
}

// inspectTimeout bounds how long a plugin may take to describe itself.
const inspectTimeout = 15 * time.Second

// inspect starts a plugin just long enough to ask it to describe itself
// (`validate`, `plugins`), after the same checks as `run` makes.
func inspect(b supervisor.Binary) (shared.Description, error) {
	ctx, cancel := context.WithTimeout(context.Background(), inspectTimeout)
	defer cancel()
	return supervisor.Inspect(ctx, b, hclog.NewNullLogger())
}
