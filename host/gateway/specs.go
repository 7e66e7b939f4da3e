package gateway

import (
	"encoding/json"
	"errors"

	"github.com/plughost/gateway/host/config"
	"github.com/plughost/gateway/host/supervisor"
	"github.com/plughost/gateway/shared"
)

// specs turns cfg's platform blocks into what the supervisor runs.
func specs(cfg *config.Config) []supervisor.Spec {
	out := make([]supervisor.Spec, 0, len(cfg.Platforms))
	for _, p := range cfg.Platforms {
		out = append(out, supervisor.Spec{
			Name:         p.Name,
			Plugin:       p.Plugin,
			Path:         cfg.PluginPath(p),
			Dir:          cfg.Gateway.PluginDir,
			Enabled:      p.Enabled,
			SHA256:       p.SHA256,
			Restart:      restartPolicy(p.Restart),
			StartTimeout: cfg.Gateway.PluginStartTimeout,
			Decode: func(schema []shared.Attribute) (json.RawMessage, error) {
				raw, diags := cfg.DecodePlatformConfig(p, schema)
				if diags.HasErrors() {
					return nil, errors.New(config.FormatDiagnostics(diags))
				}
				return raw, nil
			},
			Fingerprint: config.Fingerprint(cfg, p),
		})
	}
	return out
}
