package gateway

import (
	"github.com/plughost/gateway/host/agent"
	"github.com/plughost/gateway/host/config"
	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/supervisor"
)

// The host's packages take their own settings types; these turn the loaded
// config blocks into them. Only host/config and this wiring know the HCL
// structs (a test in host/config keeps it so).

// agentConfig is the agent layer's part of cfg: the agent and cache blocks
// and the providers.
func agentConfig(cfg *config.Config) agent.Config {
	providers := make([]provider.Config, 0, len(cfg.Providers))
	for _, p := range cfg.Providers {
		providers = append(providers, provider.Config{
			Name:           p.Name,
			Type:           p.Type,
			BaseURL:        p.BaseURL,
			APIKey:         p.APIKey,
			Timeout:        p.Timeout,
			MaxConnections: p.MaxConnections,
			Headers:        p.Headers,

			StreamIdleTimeout: p.StreamIdleTimeout,
		})
	}
	var named []agent.Named
	for _, a := range cfg.Agents {
		if a.Name == config.DefaultAgentName {
			continue
		}
		named = append(named, agent.Named{Name: a.Name, Model: a.Model, SystemPrompt: a.SystemPrompt,
			HistoryLimit: a.HistoryLimit, Tools: a.Tools, MaxToolRounds: a.MaxToolRounds})
	}
	routes := make(map[string]string, len(cfg.Platforms))
	for _, p := range cfg.Platforms {
		routes[p.Name] = p.Agent
	}
	return agent.Config{
		Providers:     providers,
		Model:         cfg.Agent.Model,
		SystemPrompt:  cfg.Agent.SystemPrompt,
		HistoryLimit:  cfg.Agent.HistoryLimit,
		Tools:         cfg.Agent.Tools,
		MaxToolRounds: cfg.Agent.MaxToolRounds,
		Agents:        named,
		Routes:        routes,
		MaxAgents:     cfg.Cache.MaxAgents,
		IdleTTL:       cfg.Cache.IdleTTL,

		MaxReplyBytes: cfg.Agent.MaxReplyBytes,
	}
}

// restartPolicy is a platform's restart block as the supervisor takes it.
func restartPolicy(r config.Restart) supervisor.RestartPolicy {
	return supervisor.RestartPolicy{
		InitialBackoff: r.InitialBackoff,
		MaxBackoff:     r.MaxBackoff,
		MaxFailures:    r.MaxFailures,
		FailureWindow:  r.FailureWindow,
		// Liveness pings (issue 21).
		LivenessInterval: r.LivenessInterval,
		LivenessTimeout:  r.LivenessTimeout,
		LivenessFailures: r.LivenessFailures,
	}
}
