package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/plughost/gateway/host/config"
	"github.com/plughost/gateway/host/supervisor"
	"github.com/plughost/gateway/shared"
)

func validateCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("validate", stderr)
	cfgFlag := configFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgFlag)
	if err != nil {
		return err
	}
	diags := checkPlatforms(cfg)
	if len(diags) > 0 {
		fmt.Fprintln(stderr, config.FormatDiagnostics(diags))
	}
	if diags.HasErrors() {
		return exitf(1, "%s is not valid", configPath(*cfgFlag))
	}
	fmt.Fprintf(stdout, "%s: valid (%d platforms, %d providers)\n", configPath(*cfgFlag), len(cfg.Platforms), len(cfg.Providers))
	return nil
}

// checkPlatforms starts each platform's plugin just long enough to get its
// schema, decodes the platform's config block against it, and has the
// plugin check the result as it would at run time.
func checkPlatforms(cfg *config.Config) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, p := range cfg.Platforms {
		path := cfg.PluginPath(p)
		rng := p.DeclRange
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  fmt.Sprintf("platform %q: plugin binary not found", p.Name),
				Detail:   fmt.Sprintf("%s does not exist, so its config block was not checked", path),
				Subject:  &rng,
			})
			continue
		}
		var pdiags hcl.Diagnostics
		decode := func(schema []shared.Attribute) (json.RawMessage, error) {
			raw, d := cfg.DecodePlatformConfig(p, schema)
			pdiags = d
			if d.HasErrors() {
				return nil, errors.New(config.FormatDiagnostics(d))
			}
			return raw, nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), inspectTimeout)
		_, err := supervisor.Check(ctx, supervisor.Binary{Path: path, Dir: cfg.Gateway.PluginDir, SHA256: p.SHA256}, decode, hclog.NewNullLogger())
		cancel()
		var fatal *shared.FatalError
		switch {
		case errors.Is(err, supervisor.ErrNotDecoded):
			diags = append(diags, pdiags...)
		case errors.As(err, &fatal):
			// The plugin refuses the block as a whole (it would fail at run).
			if !p.ConfigRange.Empty() {
				rng = p.ConfigRange
			}
			// A disabled platform (enabled = env("TOKEN", "") != "" with
			// no token) is not run: what its plugin refuses is a warning
			// for when it is enabled, so the shipped config stays valid on
			// a machine with no secrets.
			severity, summary := hcl.DiagError, fmt.Sprintf("platform %q: %s", p.Name, fatal.Message)
			if !p.Enabled {
				severity, summary = hcl.DiagWarning, fmt.Sprintf("platform %q (disabled): %s", p.Name, fatal.Message)
			}
			diags = append(diags, pdiags...)
			diags = append(diags, &hcl.Diagnostic{
				Severity: severity,
				Summary:  summary,
				Detail:   fatal.Hint,
				Subject:  &rng,
			})
		case err != nil:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("platform %q: plugin %s could not check its config", p.Name, path),
				Detail:   err.Error(),
				Subject:  &rng,
			})
		default:
			diags = append(diags, pdiags...)
		}
	}
	return diags
}
