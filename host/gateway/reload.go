package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/host/config"
)

// ErrNoReload is returned by Reload when the host was started without a way
// to load its configuration again.
var ErrNoReload = errors.New("reload is not available")

// Reload loads the configuration again. An invalid one (the file itself, or
// a platform config block its plugin's schema refuses) changes nothing: the
// host keeps running the old one and shows the error in /v1/status. A valid
// one is applied: platforms added are started, removed ones stopped,
// changed ones restarted alone, unchanged ones left connected; agent and
// cache settings are applied; the log level changes at once, plugins too.
func (h *Host) Reload() error { return h.reloadCtx(context.Background()) }

// reloadCtx is Reload; ctx ends it early (shutdown) while plugin binaries
// are being described.
func (h *Host) reloadCtx(ctx context.Context) error {
	if h.reload == nil {
		return ErrNoReload
	}
	h.logger.Info("reloading configuration")
	cfg, err := h.reload()
	if err != nil {
		h.reloadFailed(err)
		return err
	}
	// A platform's config block is checked against its plugin's schema
	// before anything changes, like the rest of the file: a typo in it
	// must not take a running platform down.
	if diags := h.plugins.checkPlatforms(ctx, cfg, h.logger); diags.HasErrors() {
		err := errors.New(config.FormatDiagnostics(diags))
		h.reloadFailed(err)
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("reload abandoned: %w", err)
	}
	old := h.Config()
	if cfg.Gateway.StateDir != old.Gateway.StateDir || cfg.Gateway.Admin != old.Gateway.Admin {
		h.logger.Warn("state_dir and admin changes take effect at the next restart")
		cfg.Gateway.StateDir, cfg.Gateway.Admin = old.Gateway.StateDir, old.Gateway.Admin
	}
	if cfg.Store.Type != old.Store.Type || cfg.Store.DSN != old.Store.DSN || !sameCluster(cfg.Cluster, old.Cluster) {
		h.logger.Warn("store and cluster changes take effect at the next restart")
		cfg.Store, cfg.Cluster = old.Store, old.Cluster
	}
	h.logger.SetLevel(hclog.LevelFromString(cfg.Gateway.LogLevel))
	if cfg.Gateway.LogLevel != old.Gateway.LogLevel {
		h.sup.SetLogLevel(cfg.Gateway.LogLevel)
	}
	if err := h.agents.Apply(agentConfig(cfg)); err != nil {
		h.reloadFailed(err)
		return fmt.Errorf("applying agent settings: %w", err)
	}
	h.tools.Apply(mcpConfigs(cfg))
	h.mu.Lock()
	h.cfg = cfg
	h.reloadErr = ""
	h.mu.Unlock()
	h.router.SetLimits(cfg.Agent.QueueLimit, cfg.Agent.ReplyTimeout)
	if cfg.Agent.MaxConcurrent != old.Agent.MaxConcurrent {
		h.logger.Warn("agent.max_concurrent changes take effect at the next restart")
	}
	h.applyPlatforms(cfg)
	h.metrics.reloads.WithLabelValues("ok").Inc()
	h.logger.Info("configuration reloaded")
	return nil
}

// reloadFailed records why a reload changed nothing, for /v1/status.
func (h *Host) reloadFailed(err error) {
	h.mu.Lock()
	h.reloadErr = fmt.Sprintf("%s: %v", time.Now().UTC().Format(time.RFC3339), err)
	h.mu.Unlock()
	h.metrics.reloads.WithLabelValues("failed").Inc()
}

// sameCluster reports whether two cluster blocks say the same.
func sameCluster(a, b *config.Cluster) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Name == b.Name && a.LeaseTTL == b.LeaseTTL
}
