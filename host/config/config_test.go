package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// env returns a lookup function over vars, standing in for os.LookupEnv.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// mustParse parses src as config.hcl and fails on any diagnostic.
func mustParse(t *testing.T, src string, vars map[string]string) *Config {
	t.Helper()
	c, diags := parse([]byte(src), "config.hcl", env(vars))
	if len(diags) > 0 {
		t.Fatalf("unexpected diagnostics:\n%s", FormatDiagnostics(diags))
	}
	return c
}

// checkDiags asserts that diags, formatted, are exactly one line per want
// entry, each starting with the entry's prefix and containing its text.
func checkDiags(t *testing.T, diags hcl.Diagnostics, want ...[2]string) {
	t.Helper()
	got := FormatDiagnostics(diags)
	lines := strings.Split(got, "\n")
	if got == "" {
		lines = nil
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d diagnostics, want %d:\n%s", len(lines), len(want), got)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w[0]) || !strings.Contains(lines[i], w[1]) {
			t.Errorf("diagnostic %d:\n got  %s\n want prefix %q containing %q", i, lines[i], w[0], w[1])
		}
	}
}

func TestParseDiagnostics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		vars map[string]string
		want [][2]string // {"config.hcl:L:C: Summary", "detail text"}
	}{
		{"log_level", "gateway {\n  log_level = \"verbose\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid value", `log_level must be "trace", "debug", "info", "warn" or "error", not "verbose"`}}},
		{"log_format", "gateway {\n  log_format = \"xml\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid value", `log_format must be "text" or "json", not "xml"`}}},
		{"duration without unit", "gateway {\n  shutdown_timeout = \"30\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid duration", `shutdown_timeout must be a duration such as "30s"`}}},
		{"negative duration", "cache {\n  idle_ttl = \"-5s\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid duration", `idle_ttl must be positive, not "-5s"`}}},
		{"empty state_dir", "gateway {\n  state_dir = \"\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Empty state_dir", "must not be empty"}}},
		{"unknown gateway attribute", "gateway {\n  state_dri = \"x\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Unsupported argument", `Did you mean "state_dir"?`}}},
		{"unknown block", "platfrom \"web\" {\n}",
			nil, [][2]string{{"config.hcl:1:1: Unsupported block type", `Did you mean "platform"?`}}},
		{"wrong type", "agent {\n  history_limit = \"many\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Incorrect attribute value type", "history_limit: a number is required"}}},
		{"negative history_limit", "agent {\n  history_limit = -1\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid number", "history_limit must not be negative, not -1"}}},
		{"store sync", "store {\n  sync = \"sometimes\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid sync", `sync is "always"`}}},
		{"store type", "store {\n  type = \"mongo\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid value", `type must be "bolt"`}}},
		{"store dsn for bbolt", "store {\n  dsn = \"postgres://x\"\n}",
			nil, [][2]string{{"config.hcl:2:3: dsn needs a networked store", `takes no dsn`}}},
		{"zero max_agents", "cache {\n  max_agents = 0\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid number", "max_agents must be at least 1, not 0"}}},
		{"negative max_connections", "provider \"echo\" {\n  max_connections = -4\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid number", "max_connections must be at least 1, not -4"}}},
		{"tiny max_reply_bytes", "agent {\n  max_reply_bytes = 10\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid number", "max_reply_bytes must be at least 1024, not 10"}}},
		{"huge max_reply_bytes", "agent {\n  max_reply_bytes = 5000000\n}",
			nil, [][2]string{{"config.hcl:2:3: max_reply_bytes too large", "max_reply_bytes is at most 4194304"}}},
		{"fractional queue_limit", "agent {\n  queue_limit = 1.5\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid number", "queue_limit must be a whole number, not 1.5"}}},
		{"duplicate gateway block", "gateway {}\ngateway {}",
			nil, [][2]string{{"config.hcl:2:1: Duplicate gateway block", "the first is at config.hcl:1:1"}}},
		{"duplicate provider", "provider \"a\" { type = \"echo\" }\nprovider \"a\" { type = \"echo\" }",
			nil, [][2]string{{"config.hcl:2:10: Duplicate provider name", `Another provider block is already named "a"`}}},
		{"duplicate platform", "platform \"web\" {}\n\nplatform \"web\" {}",
			nil, [][2]string{{"config.hcl:3:10: Duplicate platform name", `Another platform block is already named "web"`}}},
		{"provider type", "provider \"x\" {\n  type = \"anthropic\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid value", `type must be "echo" or "openai", not "anthropic"`}}},
		{"provider without type", "provider \"x\" {}",
			nil, [][2]string{{"config.hcl:1:1: Missing provider type", `provider "x" needs a type`}}},
		{"openai without base_url", "provider \"oa\" {\n  type = \"openai\"\n}",
			nil, [][2]string{{"config.hcl:1:1: Missing base_url", `provider "oa" of type "openai" needs base_url`}}},
		{"openai with empty base_url", "provider \"openai\" {\n  api_key  = \"k\"\n  base_url = env(\"OPENAI_BASE_URL\", \"\")\n}",
			nil, [][2]string{{"config.hcl:3:3: Missing base_url", `needs base_url`}}},
		{"bad base_url", "provider \"openai\" {\n  base_url = \"localhost:8080\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid base_url", "must be an http:// or https:// URL"}}},
		{"bad provider name", "provider \"a/b\" { type = \"echo\" }",
			nil, [][2]string{{"config.hcl:1:10: Invalid provider name", `not "a/b"`}}},
		{"model without slash", "agent {\n  model = \"gpt-4\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid model", `model must be PROVIDER/MODEL`}}},
		{"model with empty name", "agent {\n  model = \"echo/\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid model", `not "echo/"`}}},
		{"model naming an unknown provider", "provider \"local\" {\n  type     = \"openai\"\n  base_url = \"http://127.0.0.1:11434/v1\"\n}\nagent {\n  model = \"openai/gpt-4o\"\n}",
			nil, [][2]string{{"config.hcl:6:3: Unknown provider", `no provider "openai" block; the providers are "local" and "echo"`}}},
		{"session_scope", "platform \"web\" {\n  session_scope = \"channel\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid value", `session_scope must be "conversation" or "user", not "channel"`}}},
		{"short sha256", "platform \"web\" {\n  sha256 = \"abc123\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid sha256", "64 hexadecimal digits"}}},
		{"non-hex sha256", "platform \"web\" {\n  sha256 = \"" + strings.Repeat("z", 64) + "\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid sha256", "64 hexadecimal digits"}}},
		{"plugin escaping plugin_dir", "platform \"web\" {\n  plugin = \"../evil\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Invalid plugin name", `not "../evil"`}}},
		{"bad platform name", "platform \"a b\" {}",
			nil, [][2]string{{"config.hcl:1:10: Invalid platform name", `not "a b"`}}},
		{"unknown platform attribute", "platform \"web\" {\n  plugn = \"http\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Unsupported argument", `Did you mean "plugin"?`}}},
		{"config as an attribute", "platform \"web\" {\n  config = {}\n}",
			nil, [][2]string{{"config.hcl:2:3: Unsupported argument", `block of type "config"`}}},
		{"enabled not a bool", "platform \"web\" {\n  enabled = \"perhaps\"\n}",
			nil, [][2]string{{"config.hcl:2:3: Incorrect attribute value type", "enabled: a bool is required"}}},
		{"headers not a map", "provider \"echo\" {\n  headers = [\"a\"]\n}",
			nil, [][2]string{{"config.hcl:2:3: Incorrect attribute value type", "headers: map of string required"}}},
		{"duplicate config block", "platform \"web\" {\n  config {}\n  config {}\n}",
			nil, [][2]string{{"config.hcl:3:3: Duplicate config block", "the first is at config.hcl:2:3"}}},
		{"restart max_backoff below initial_backoff", "platform \"web\" {\n  restart {\n    max_backoff     = \"1s\"\n    initial_backoff = \"5s\"\n  }\n}",
			nil, [][2]string{{"config.hcl:3:5: Invalid max_backoff", "must not be shorter than initial_backoff (5s)"}}},
		{"restart max_failures", "platform \"web\" {\n  restart {\n    max_failures = -2\n  }\n}",
			nil, [][2]string{{"config.hcl:3:5: Invalid number", "max_failures must be at least 1, not -2"}}},
		{"restart unknown attribute", "platform \"web\" {\n  restart {\n    max_failure = 3\n  }\n}",
			nil, [][2]string{{"config.hcl:3:5: Unsupported argument", `Did you mean "max_failures"?`}}},
		{"env unset", "gateway {\n  admin = env(\"GW_ADMIN\")\n}",
			nil, [][2]string{{"config.hcl:2:11: Error in function call", `Call to function "env" failed: environment variable GW_ADMIN is not set.`}}},
		{"env unset in a template", "gateway {\n  state_dir = \"${env(\"HOME_X\")}/gw\"\n}",
			nil, [][2]string{{"config.hcl:2:18: Error in function call", "environment variable HOME_X is not set"}}},
		{"env with three arguments", "gateway {\n  admin = env(\"A\", \"b\", \"c\")\n}",
			nil, [][2]string{{"config.hcl:2:11: Error in function call", "env takes a name and at most one default"}}},
		{"unknown function", "gateway {\n  admin = getenv(\"A\")\n}",
			nil, [][2]string{{"config.hcl:2:11: Call to unknown function", ""}}},
		{"errors sorted by position", "cache {\n  max_agents = 0\n}\ngateway {\n  bogus = 1\n  log_level = \"loud\"\n}",
			nil, [][2]string{
				{"config.hcl:2:3: Invalid number", "max_agents"},
				{"config.hcl:5:3: Unsupported argument", `"bogus"`},
				{"config.hcl:6:3: Invalid value", "log_level"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, diags := parse([]byte(tt.src), "config.hcl", env(tt.vars))
			if c == nil {
				t.Fatalf("no config returned with the diagnostics:\n%s", FormatDiagnostics(diags))
			}
			checkDiags(t, diags, tt.want...)
		})
	}
}

func TestParseSyntaxError(t *testing.T) {
	t.Parallel()
	c, diags := parse([]byte("gateway {\n  admin = \n}"), "config.hcl", env(nil))
	if c != nil {
		t.Error("got a config from a file that does not parse")
	}
	if !diags.HasErrors() || !strings.HasPrefix(FormatDiagnostics(diags), "config.hcl:2:11: ") {
		t.Errorf("diagnostics = %q, want an error at config.hcl:2:11", FormatDiagnostics(diags))
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c := mustParse(t, "", nil)
	dir, _ := filepath.Abs(".")
	want := Gateway{
		StateDir:            filepath.Join(dir, ".gateway"),
		PluginDir:           filepath.Join(dir, "bin/plugins"),
		Admin:               "127.0.0.1:8787",
		LogLevel:            "info",
		LogFormat:           "text",
		ShutdownTimeout:     30 * time.Second,
		PluginStartTimeout:  10 * time.Second,
		AdminMaxConnections: 32,
	}
	if !reflect.DeepEqual(c.Gateway, want) {
		t.Errorf("Gateway = %+v, want %+v", c.Gateway, want)
	}
	if c.Path != filepath.Join(dir, "config.hcl") || c.Dir != dir {
		t.Errorf("Path, Dir = %q, %q", c.Path, c.Dir)
	}
	wantAgent := Agent{Name: "default", Model: "echo/echo", HistoryLimit: 40, MaxConcurrent: 64, QueueLimit: 8, ReplyTimeout: 5 * time.Minute,
		MaxReplyBytes: DefaultMaxReplyBytes, MaxToolRounds: 8}
	if !reflect.DeepEqual(c.Agent, wantAgent) {
		t.Errorf("Agent = %+v, want %+v", c.Agent, wantAgent)
	}
	if c.Cache != (Cache{MaxAgents: 128, IdleTTL: time.Hour}) {
		t.Errorf("Cache = %+v", c.Cache)
	}
	if len(c.Providers) != 1 || c.Provider("echo") == nil {
		t.Fatalf("Providers = %v, want the implicit echo provider only", c.Providers)
	}
	echo := c.Provider("echo")
	if echo.Type != "echo" || echo.Timeout != time.Minute || echo.MaxConnections != 32 {
		t.Errorf("implicit echo provider = %+v", echo)
	}
	if len(c.Platforms) != 0 {
		t.Errorf("Platforms = %v, want none", c.Platforms)
	}
}

func TestBlockDefaults(t *testing.T) {
	t.Parallel()
	c := mustParse(t, `
provider "openai" { base_url = "https://api.example.com/v1" }
platform "http" {}
`, nil)
	if p := c.Provider("openai"); p == nil || p.Type != "openai" || p.Timeout != time.Minute || p.MaxConnections != 32 {
		t.Errorf("provider openai = %+v, want type from its name and default limits", p)
	}
	if c.Provider("echo") == nil {
		t.Error("no implicit echo provider next to an openai one")
	}
	p := c.PlatformByName("http")
	if p == nil {
		t.Fatal("PlatformByName(http) = nil")
	}
	want := Restart{InitialBackoff: time.Second, MaxBackoff: 2 * time.Minute, MaxFailures: 5, FailureWindow: time.Minute,
		LivenessInterval: 5 * time.Second, LivenessTimeout: 5 * time.Second, LivenessFailures: 3}
	if p.Plugin != "http" || !p.Enabled || p.SessionScope != "conversation" || p.SHA256 != "" || p.Restart != want || p.Body != nil {
		t.Errorf("platform = %+v", p)
	}
	if p.DeclRange.Start.Line != 3 {
		t.Errorf("DeclRange = %v, want line 3", p.DeclRange)
	}
	if c.PlatformByName("discord") != nil {
		t.Error("PlatformByName(discord) found a platform that does not exist")
	}
}

func TestFullConfig(t *testing.T) {
	t.Parallel()
	src := `
gateway {
  state_dir        = "/var/lib/gateway"
  plugin_dir       = "plugins"
  admin            = "run/admin.sock"
  log_level        = upper("debug") == "DEBUG" ? "debug" : "info"
  log_format       = "json"
  shutdown_timeout = "45s"
  plugin_start_timeout = "3s"
}

provider "echo" { type = "echo" }
provider "openai" {
  type            = "openai"
  base_url        = env("OPENAI_BASE_URL", "https://api.openai.com/v1")
  api_key         = env("OPENAI_API_KEY", "")
  timeout         = "20s"
  stream_idle_timeout = "45s"
  max_connections = 4
  headers         = { "X-Title" = "gateway" }
}

agent {
  model          = "openai/gpt-4o-mini"
  system_prompt  = trimspace("  You are a helpful assistant.  ")
  history_limit  = 0
  max_concurrent = 2
  queue_limit    = 0
  reply_timeout  = "1m30s"
  max_reply_bytes = 100000
}

cache {
  max_agents = 16
  idle_ttl   = "10m"
}

platform "discord" {
  plugin        = "discord"
  enabled       = env("DISCORD_TOKEN", "") != ""
  session_scope = "user"
  sha256        = "` + strings.Repeat("AB", 32) + `"
  config {
    token = env("DISCORD_TOKEN", "")
  }
  restart {
    initial_backoff = "2s"
    max_backoff     = "1m"
    max_failures    = 3
    failure_window  = "30s"
    liveness_interval = "2s"
    liveness_timeout  = "1s"
    liveness_failures = 2
  }
}
`
	c, diags := parse([]byte(src), "/etc/gateway/config.hcl", env(map[string]string{"OPENAI_API_KEY": "sk-test"}))
	if len(diags) > 0 {
		t.Fatalf("unexpected diagnostics:\n%s", FormatDiagnostics(diags))
	}
	wantGateway := Gateway{
		StateDir: "/var/lib/gateway", PluginDir: "/etc/gateway/plugins", Admin: "/etc/gateway/run/admin.sock",
		LogLevel: "debug", LogFormat: "json", ShutdownTimeout: 45 * time.Second, PluginStartTimeout: 3 * time.Second,
		AdminMaxConnections: 32,
	}
	if !reflect.DeepEqual(c.Gateway, wantGateway) {
		t.Errorf("Gateway = %+v, want %+v", c.Gateway, wantGateway)
	}
	if len(c.Providers) != 2 || c.Providers[0].Name != "echo" || c.Providers[1].Name != "openai" {
		t.Fatalf("Providers = %v, want echo and openai in file order", c.Providers)
	}
	oa := c.Providers[1]
	if oa.BaseURL != "https://api.openai.com/v1" || oa.APIKey != "sk-test" || oa.Timeout != 20*time.Second ||
		oa.MaxConnections != 4 || oa.Headers["X-Title"] != "gateway" || oa.StreamIdleTimeout != 45*time.Second {
		t.Errorf("openai provider = %+v (key %q)", oa, oa.APIKey)
	}
	wantAgent := Agent{Name: "default", Model: "openai/gpt-4o-mini", SystemPrompt: "You are a helpful assistant.",
		HistoryLimit: 0, MaxConcurrent: 2, QueueLimit: 0, ReplyTimeout: 90 * time.Second, MaxReplyBytes: 100000, MaxToolRounds: 8}
	got := c.Agent
	got.DeclRange = hcl.Range{}
	if !reflect.DeepEqual(got, wantAgent) {
		t.Errorf("Agent = %+v, want %+v", c.Agent, wantAgent)
	}
	if c.Cache != (Cache{MaxAgents: 16, IdleTTL: 10 * time.Minute}) {
		t.Errorf("Cache = %+v", c.Cache)
	}
	p := c.PlatformByName("discord")
	wantRestart := Restart{InitialBackoff: 2 * time.Second, MaxBackoff: time.Minute, MaxFailures: 3, FailureWindow: 30 * time.Second,
		LivenessInterval: 2 * time.Second, LivenessTimeout: time.Second, LivenessFailures: 2}
	if p.Enabled || p.SessionScope != "user" || p.SHA256 != strings.Repeat("ab", 32) || p.Restart != wantRestart {
		t.Errorf("platform = %+v", p)
	}
	if p.Body == nil || p.ConfigRange.Start.Line != 43 {
		t.Errorf("config block not kept: Body %v, ConfigRange %v", p.Body, p.ConfigRange)
	}
}

func TestEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		expr    string
		vars    map[string]string
		want    string
		wantErr string
	}{
		{"set", `env("GW_DIR")`, map[string]string{"GW_DIR": "/srv/a"}, "/srv/a", ""},
		{"set but empty beats the default", `env("GW_DIR", "/srv/default")`, map[string]string{"GW_DIR": ""}, "", "Empty state_dir"},
		{"default", `env("GW_DIR", "/srv/default")`, nil, "/srv/default", ""},
		{"unset", `env("GW_DIR")`, nil, "", "config.hcl:1:23: Error in function call: Call to function \"env\" failed: environment variable GW_DIR is not set."},
		{"in a template", `"${env("GW_ROOT", "/srv")}/gw"`, nil, "/srv/gw", ""},
		{"lower", `lower(env("GW_DIR"))`, map[string]string{"GW_DIR": "/SRV"}, "/srv", ""},
		{"not a string name", `env(["GW_DIR"])`, nil, "", "Invalid function argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, diags := parse([]byte(`gateway { state_dir = `+tt.expr+` }`), "config.hcl", env(tt.vars))
			got := FormatDiagnostics(diags)
			if tt.wantErr != "" {
				if !strings.Contains(got, tt.wantErr) {
					t.Errorf("diagnostics = %q, want %q", got, tt.wantErr)
				}
				return
			}
			if got != "" {
				t.Fatalf("unexpected diagnostics: %s", got)
			}
			if c.Gateway.StateDir != tt.want {
				t.Errorf("state_dir = %q, want %q", c.Gateway.StateDir, tt.want)
			}
		})
	}
}

func TestEnabledExpression(t *testing.T) {
	t.Parallel()
	src := `
platform "discord" {
  enabled = env("DISCORD_TOKEN", "") != ""
}
platform "web" {
  enabled = !(env("WEB_OFF", "") == "1") && true
}
`
	for _, tt := range []struct {
		vars         map[string]string
		discord, web bool
	}{
		{nil, false, true},
		{map[string]string{"DISCORD_TOKEN": "t", "WEB_OFF": "1"}, true, false},
		{map[string]string{"DISCORD_TOKEN": ""}, false, true},
	} {
		c := mustParse(t, src, tt.vars)
		if got := c.PlatformByName("discord").Enabled; got != tt.discord {
			t.Errorf("env %v: discord enabled = %v, want %v", tt.vars, got, tt.discord)
		}
		if got := c.PlatformByName("web").Enabled; got != tt.web {
			t.Errorf("env %v: web enabled = %v, want %v", tt.vars, got, tt.web)
		}
	}
}

func TestRelativePaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		admin, want string
	}{
		{"127.0.0.1:9000", "127.0.0.1:9000"},
		{"localhost:8787", "localhost:8787"},
		{"admin.sock", "/srv/gw/admin.sock"},
		{"run/admin", "/srv/gw/run/admin"},
		{"./admin.sock", "/srv/gw/admin.sock"},
		{"/run/gateway/admin.sock", "/run/gateway/admin.sock"},
	}
	for _, tt := range tests {
		src := `gateway {
  state_dir  = "state"
  plugin_dir = "../plugins"
  admin      = "` + tt.admin + `"
}`
		c, diags := parse([]byte(src), "/srv/gw/config.hcl", env(nil))
		if len(diags) > 0 {
			t.Fatalf("unexpected diagnostics:\n%s", FormatDiagnostics(diags))
		}
		if c.Gateway.Admin != tt.want {
			t.Errorf("admin %q resolved to %q, want %q", tt.admin, c.Gateway.Admin, tt.want)
		}
		if c.Gateway.StateDir != "/srv/gw/state" || c.Gateway.PluginDir != "/srv/plugins" {
			t.Errorf("state_dir, plugin_dir = %q, %q", c.Gateway.StateDir, c.Gateway.PluginDir)
		}
		if c.Path != "/srv/gw/config.hcl" || c.Dir != "/srv/gw" {
			t.Errorf("Path, Dir = %q, %q", c.Path, c.Dir)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(path, []byte("gateway {\n  state_dir = \"state\"\n  log_level = \"loud\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	c, diags := Load(dir + "/./config.hcl")
	checkDiags(t, diags, [2]string{path + ":3:3: Invalid value", "log_level"})
	if c == nil || c.Path != path || c.Gateway.StateDir != filepath.Join(dir, "state") {
		t.Fatalf("Load = %+v", c)
	}

	// Diagnostics name the file as the user wrote it; Path is absolute.
	t.Chdir(dir)
	c, diags = Load("config.hcl")
	checkDiags(t, diags, [2]string{"config.hcl:3:3: Invalid value", "log_level"})
	if c.Path != path || c.Dir != dir {
		t.Errorf("Path, Dir = %q, %q, want %q, %q", c.Path, c.Dir, path, dir)
	}

	c, diags = Load("missing.hcl")
	if c != nil {
		t.Error("Load of a missing file returned a config")
	}
	checkDiags(t, diags, [2]string{"missing.hcl: Cannot read the configuration file", "no such file or directory"})
}

func TestRepositoryConfig(t *testing.T) {
	t.Parallel()
	const path = "../../config.hcl"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no repository config: %v", err)
	}
	c, diags := Load(path)
	if len(diags) > 0 {
		t.Fatalf("%s does not load cleanly:\n%s", path, FormatDiagnostics(diags))
	}
	if c.Provider(c.Agent.Model[:strings.Index(c.Agent.Model, "/")]) == nil {
		t.Errorf("default model %q has no provider", c.Agent.Model)
	}
}

func TestFormatDiagnostics(t *testing.T) {
	t.Parallel()
	rng := &hcl.Range{Filename: "config.hcl", Start: hcl.Pos{Line: 12, Column: 5, Byte: 100}}
	diags := hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "Bad thing", Detail: "It is bad.\nVery.", Subject: rng},
		{Severity: hcl.DiagWarning, Summary: "Odd thing", Detail: "It is odd.", Subject: rng},
		{Severity: hcl.DiagError, Summary: "No place"},
		{Severity: hcl.DiagError, Summary: "File only", Detail: "x", Subject: &hcl.Range{Filename: "c.hcl"}},
	}
	want := "config.hcl:12:5: Bad thing: It is bad. Very.\n" +
		"config.hcl:12:5: warning: Odd thing: It is odd.\n" +
		"No place\n" +
		"c.hcl: File only: x"
	if got := FormatDiagnostics(diags); got != want {
		t.Errorf("FormatDiagnostics =\n%s\nwant\n%s", got, want)
	}
	if got := FormatDiagnostics(nil); got != "" {
		t.Errorf("FormatDiagnostics(nil) = %q", got)
	}
}

func TestStoreSync(t *testing.T) {
	t.Parallel()
	for src, want := range map[string]time.Duration{
		"":                                0,
		"store {\n  sync = \"always\"\n}": 0,
		"store {\n  sync = \"100ms\"\n}":  100 * time.Millisecond,
	} {
		cfg, err := Parse([]byte(src), "config.hcl")
		if err.HasErrors() {
			t.Fatalf("%q: %v", src, err)
		}
		if cfg.Store.SyncInterval != want || cfg.Store.Type != "bolt" {
			t.Errorf("%q: store = %+v, want sync interval %s of bbolt", src, cfg.Store, want)
		}
	}
}
