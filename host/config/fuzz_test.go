package config

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/plughost/gateway/shared"
)

// FuzzParse feeds arbitrary files to the HCL loader: it never panics, every
// error has a position in the file, and a config it accepts holds only
// values the rest of the gateway can run with.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"gateway {\n  log_level = \"debug\"\n  shutdown_timeout = \"5s\"\n}\n",
		"agent {\n  history_limit = 0\n  queue_limit = 0\n  model = \"echo/echo\"\n}\n",
		"cache {\n  max_agents = 0\n  idle_ttl = \"0s\"\n}\n",
		"provider \"openai\" {\n  base_url = env(\"X\", \"http://127.0.0.1:1/v1\")\n  api_key = \"k\"\n  headers = { a = \"b\" }\n}\n",
		"platform \"web\" {\n  plugin = \"http\"\n  enabled = env(\"T\", \"\") != \"\"\n  config {\n    listen = \"127.0.0.1:8788\"\n  }\n  restart {\n    max_backoff = \"1s\"\n    initial_backoff = \"5s\"\n  }\n}\n",
		"platform \"a b\" {}\nprovider \"a/b\" {}\n",
		"agent {\n  history_limit = 1e30\n  queue_limit = -0.5\n}\n",
		"gateway {\n  admin = \"${env(\"HOME_X\")}/x\"\n}\n",
		"platform \"x\" {\n  sha256 = \"" + strings.Repeat("A", 64) + "\"\n}\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		c, diags := parse([]byte(src), "config.hcl", env(map[string]string{"SET": "1"}))
		text := FormatDiagnostics(diags)
		for _, d := range diags {
			if d.Severity == hcl.DiagError && (d.Subject == nil || d.Subject.Filename != "config.hcl") {
				t.Fatalf("error without a position: %s", text)
			}
		}
		if diags.HasErrors() {
			return
		}
		if c == nil {
			t.Fatal("no config and no error")
		}
		a := c.Agent
		switch {
		case a.HistoryLimit < 0, a.QueueLimit < 0, a.MaxConcurrent < 1, a.ReplyTimeout <= 0:
			t.Fatalf("accepted agent settings %+v", a)
		case c.Cache.MaxAgents < 1, c.Cache.IdleTTL <= 0:
			t.Fatalf("accepted cache settings %+v", c.Cache)
		case c.Gateway.ShutdownTimeout <= 0, c.Gateway.PluginStartTimeout <= 0, c.Gateway.StateDir == "", c.Gateway.PluginDir == "":
			t.Fatalf("accepted gateway settings %+v", c.Gateway)
		}
		prov, _, _ := strings.Cut(a.Model, "/")
		if c.Provider(prov) == nil {
			t.Fatalf("accepted model %q without its provider", a.Model)
		}
		for _, p := range c.Providers {
			if p.Timeout <= 0 || p.MaxConnections < 1 || !validName.MatchString(p.Name) {
				t.Fatalf("accepted provider %+v", p)
			}
		}
		for _, p := range c.Platforms {
			r := p.Restart
			if !validName.MatchString(p.Name) || !validName.MatchString(p.Plugin) || r.InitialBackoff <= 0 ||
				r.MaxBackoff < r.InitialBackoff || r.MaxFailures < 1 || r.FailureWindow <= 0 {
				t.Fatalf("accepted platform %+v", p)
			}
		}
	})
}

// fuzzSecret is the value of the sensitive attribute in
// FuzzDecodePlatformConfig: no diagnostic may show it.
const fuzzSecret = "s3cr3t-VALUE-42"

// fuzzSchema has one attribute of every type, a sensitive one and a
// required one.
var fuzzSchema = []shared.Attribute{
	{Name: "token", Type: shared.TypeString, Sensitive: true, Required: true},
	{Name: "listen", Type: shared.TypeString, Default: "127.0.0.1:8788"},
	{Name: "enabled", Type: shared.TypeBool, Default: true},
	{Name: "max_body", Type: shared.TypeNumber, Default: 65536},
	{Name: "users", Type: shared.TypeListOfString},
	{Name: "timeout", Type: shared.TypeDuration, Default: "120s"},
	{Name: "secret_wait", Type: shared.TypeDuration, Sensitive: true},
}

// FuzzDecodePlatformConfig feeds arbitrary config blocks to the schema
// decoder: it never panics, never quotes a sensitive value, and what it
// accepts is a JSON object with exactly the schema's attributes that are
// set or have a default.
func FuzzDecodePlatformConfig(f *testing.F) {
	for _, seed := range []string{
		"",
		"listen = \"0.0.0.0:1\"\nusers = [\"a\", \"b\"]\ntimeout = \"5s\"",
		"timeuot = \"5s\"",
		"max_body = \"big\"",
		"users = [null]",
		"timeout = \"" + fuzzSecret + "\"",
		"secret_wait = \"" + fuzzSecret + "\"",
		"token = 1",
		"nested {\n  a = 1\n}",
		"max_body = 1e400",
		"enabled = env(\"SET\") == \"1\"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		src := "platform \"web\" {\n  config {\n    token = \"" + fuzzSecret + "\"\n" + body + "\n  }\n}\n"
		c, diags := parse([]byte(src), "config.hcl", env(map[string]string{"SET": "1"}))
		if diags.HasErrors() || len(c.Platforms) != 1 {
			return
		}
		raw, pdiags := c.DecodePlatformConfig(c.Platforms[0], fuzzSchema)
		text := FormatDiagnostics(pdiags)
		if strings.Contains(text, fuzzSecret) && !strings.Contains(body, fuzzSecret) {
			t.Fatalf("a diagnostic quotes the sensitive value:\n%s", text)
		}
		for _, d := range pdiags {
			if one := FormatDiagnostics(hcl.Diagnostics{d}); strings.Contains(one, "secret_wait") && strings.Contains(one, fuzzSecret) {
				t.Fatalf("a diagnostic about secret_wait quotes its value:\n%s", one)
			}
			if d.Severity == hcl.DiagError && d.Subject == nil {
				t.Fatalf("error without a position: %s", text)
			}
		}
		if pdiags.HasErrors() {
			if raw != nil {
				t.Fatalf("returned a config with errors: %s", raw)
			}
			return
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			t.Fatalf("accepted config is not a JSON object: %s (%v)", raw, err)
		}
		known := map[string]bool{}
		for _, a := range fuzzSchema {
			known[a.Name] = true
			if _, set := obj[a.Name]; !set && (a.Default != nil || a.Required) {
				t.Fatalf("accepted config lacks %s: %s", a.Name, raw)
			}
		}
		for k := range obj {
			if !known[k] {
				t.Fatalf("accepted config holds %q, which the schema does not: %s", k, raw)
			}
		}
		if shown := Redacted(raw, fuzzSchema); strings.Contains(string(shown), fuzzSecret) {
			t.Fatalf("Redacted shows the secret: %s", shown)
		}
	})
}
