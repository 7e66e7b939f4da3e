package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/hashicorp/hcl/v2"

	"github.com/plughost/gateway/host/config"
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
// schema and decodes the platform's config block against it.
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
		desc, _, err := inspect(path)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("platform %q: plugin %s did not describe itself", p.Name, path),
				Detail:   err.Error(),
				Subject:  &rng,
			})
			continue
		}
		_, pdiags := cfg.DecodePlatformConfig(p, desc.Schema)
		diags = append(diags, pdiags...)
	}
	return diags
}
