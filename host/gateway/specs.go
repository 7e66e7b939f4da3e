package gateway

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/plughost/gateway/host/config"
	"github.com/plughost/gateway/host/supervisor"
	"github.com/plughost/gateway/shared"
)

// specs turns cfg's platform blocks into what the supervisor runs.
func specs(cfg *config.Config) []supervisor.Spec {
	out := make([]supervisor.Spec, 0, len(cfg.Platforms))
	for _, p := range cfg.Platforms {
		for shard, unit := range p.Units() {
			out = append(out, unitSpec(cfg, p, unit, shard))
		}
	}
	return out
}

// unitSpec is what the supervisor runs for one unit of p: the platform, or
// one of its shards.
func unitSpec(cfg *config.Config, p *config.Platform, unit string, shard int) supervisor.Spec {
	fingerprint := config.Fingerprint(cfg, p)
	if p.Shards > 1 {
		fingerprint += fmt.Sprintf("/shard %d of %d", shard, p.Shards)
	}
	return supervisor.Spec{
		Name:         unit,
		Shard:        shard,
		ShardCount:   p.Shards,
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
		Fingerprint: fingerprint,
	}
}
