package config

import (
	"slices"
	"testing"
)

func TestAccessAndLimits(t *testing.T) {
	t.Parallel()
	c := mustParse(t, `
agent {
  limits {
    messages_per_minute = 3
    tokens_per_day      = 1000
  }
}
platform "web" { plugin = "http" }
platform "discord" { plugin = "discord" }
platform "tg" {
  plugin = "telegram"
  access {
    dm            = "allowlist"
    allowed_users = ["1", "2"]
  }
}
platform "api" {
  plugin = "http"
  access {
    dm = "pairing"
  }
}
`, nil)
	if c.Agent.Limits != (Limits{MessagesPerMinute: 3, TokensPerDay: 1000}) {
		t.Errorf("limits = %+v", c.Agent.Limits)
	}
	want := map[string]string{"web": "open", "discord": "pairing", "tg": "allowlist", "api": "pairing"}
	for _, p := range c.Platforms {
		if p.Access.DM != want[p.Name] {
			t.Errorf("platform %s: dm = %q, want %q", p.Name, p.Access.DM, want[p.Name])
		}
	}
	if tg := c.Platforms[2]; !slices.Equal(tg.Access.AllowedUsers, []string{"1", "2"}) {
		t.Errorf("allowed_users = %q", tg.Access.AllowedUsers)
	}
	if (mustParse(t, "agent {}", nil).Agent.Limits != Limits{}) {
		t.Error("no limits block should mean no limits")
	}
}

func TestAccessDiagnostics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src string
		want      [2]string
	}{
		{"dm", "platform \"d\" {\n  access {\n    dm = \"closed\"\n  }\n}",
			[2]string{"config.hcl:3:5: Invalid value", `dm must be "pairing", "open" or "allowlist", not "closed"`}},
		{"allowed_users type", "platform \"d\" {\n  access {\n    allowed_users = \"1\"\n  }\n}",
			[2]string{"config.hcl:3:5: Incorrect attribute value type", "allowed_users"}},
		{"unknown attribute", "platform \"d\" {\n  access {\n    mode = \"open\"\n  }\n}",
			[2]string{"config.hcl:3:5: Unsupported argument", "mode"}},
		{"duplicate access", "platform \"d\" {\n  access {}\n  access {}\n}",
			[2]string{"config.hcl:3:3: Duplicate access block", "config.hcl:2:3"}},
		{"negative limit", "agent {\n  limits {\n    messages_per_minute = -1\n  }\n}",
			[2]string{"config.hcl:3:5: Invalid number", "messages_per_minute must not be negative"}},
		{"duplicate limits", "agent {\n  limits {}\n  limits {}\n}",
			[2]string{"config.hcl:3:3: Duplicate limits block", "config.hcl:2:3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := parse([]byte(tt.src), "config.hcl", env(nil))
			checkDiags(t, diags, tt.want)
		})
	}
}
