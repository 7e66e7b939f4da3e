package config

import (
	"fmt"
	"strings"
	"testing"
)

// Zero never quietly means "the default": each attribute either gives 0 a
// meaning (kept as 0) or refuses it at its line.
func TestZeroMeansSomethingOrIsRefused(t *testing.T) {
	t.Parallel()
	meaningful := map[string]func(*Config) int{
		"agent.history_limit": func(c *Config) int { return c.Agent.HistoryLimit },
		"agent.queue_limit":   func(c *Config) int { return c.Agent.QueueLimit },
	}
	for _, attr := range []string{
		"gateway.shutdown_timeout", "gateway.plugin_start_timeout",
		"agent.history_limit", "agent.max_concurrent", "agent.queue_limit", "agent.reply_timeout",
		"cache.max_agents", "cache.idle_ttl",
		"provider.timeout", "provider.max_connections",
		"restart.initial_backoff", "restart.max_backoff", "restart.max_failures", "restart.failure_window",
	} {
		t.Run(attr, func(t *testing.T) {
			t.Parallel()
			block, name, _ := strings.Cut(attr, ".")
			zero := "0"
			if strings.HasSuffix(name, "timeout") || strings.HasSuffix(name, "ttl") || strings.HasSuffix(name, "backoff") || strings.HasSuffix(name, "window") {
				zero = `"0s"`
			}
			var src string
			switch block {
			case "provider":
				src = fmt.Sprintf("provider \"echo\" {\n  %s = %s\n}\n", name, zero)
			case "restart":
				src = fmt.Sprintf("platform \"web\" {\n  restart {\n    %s = %s\n  }\n}\n", name, zero)
			default:
				src = fmt.Sprintf("%s {\n  %s = %s\n}\n", block, name, zero)
			}
			c, diags := parse([]byte(src), "config.hcl", env(nil))
			if get, ok := meaningful[attr]; ok {
				if diags.HasErrors() || get(c) != 0 {
					t.Fatalf("%s = 0 is meaningful and must be kept as 0; got %v, diagnostics:\n%s", attr, c, FormatDiagnostics(diags))
				}
				return
			}
			line := 2
			if block == "restart" {
				line = 3
			}
			got := FormatDiagnostics(diags)
			if !diags.HasErrors() || !strings.HasPrefix(got, fmt.Sprintf("config.hcl:%d:", line)) || !strings.Contains(got, name) {
				t.Fatalf("%s = %s must be refused at its line; got:\n%s", attr, zero, got)
			}
		})
	}
}
