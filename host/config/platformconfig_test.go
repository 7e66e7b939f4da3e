package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/plughost/gateway/shared"
)

// discordSchema is a schema like the discord plugin's.
var discordSchema = []shared.Attribute{
	{Name: "token", Type: shared.TypeString, Required: true, Sensitive: true, Description: "the bot token"},
	{Name: "require_mention", Type: shared.TypeBool, Default: true},
	{Name: "intents", Type: shared.TypeListOfString},
	{Name: "reconnect", Type: shared.TypeDuration, Default: 5 * time.Second},
	{Name: "max_length", Type: shared.TypeNumber, Default: 2000},
	{Name: "guild", Type: shared.TypeString},
}

// platformConfig parses a file with one platform block named "discord"
// and decodes its config block against schema.
func platformConfig(t *testing.T, src string, vars map[string]string, schema []shared.Attribute) (json.RawMessage, string) {
	t.Helper()
	c := mustParse(t, src, vars)
	p := c.PlatformByName("discord")
	if p == nil {
		t.Fatal("no platform discord")
	}
	raw, diags := c.DecodePlatformConfig(p, schema)
	if diags.HasErrors() && raw != nil {
		t.Errorf("DecodePlatformConfig returned %s with errors", raw)
	}
	return raw, FormatDiagnostics(diags)
}

func TestDecodePlatformConfig(t *testing.T) {
	t.Parallel()
	raw, diags := platformConfig(t, `platform "discord" {
  config {
    token     = env("DISCORD_TOKEN")
    intents   = ["guilds", "${lower("MESSAGES")}"]
    reconnect = "1m"
    guild     = null
    max_length = 1500.5
  }
}`, map[string]string{"DISCORD_TOKEN": "SECRET123"}, discordSchema)
	if diags != "" {
		t.Fatalf("unexpected diagnostics:\n%s", diags)
	}
	want := `{"intents":["guilds","messages"],"max_length":1500.5,"reconnect":"1m","require_mention":true,"token":"SECRET123"}`
	if string(raw) != want {
		t.Errorf("config =\n%s\nwant\n%s", raw, want)
	}
	var cfg struct {
		Token          string   `json:"token"`
		RequireMention bool     `json:"require_mention"`
		Intents        []string `json:"intents"`
	}
	if err := (shared.Config{Raw: raw}).Decode(&cfg); err != nil || cfg.Token != "SECRET123" || !cfg.RequireMention {
		t.Errorf("plugin-side decode = %+v, %v", cfg, err)
	}
}

func TestDecodePlatformConfigWithoutBlock(t *testing.T) {
	t.Parallel()
	optional := discordSchema[1:]
	raw, diags := platformConfig(t, `platform "discord" {}`, nil, optional)
	if diags != "" {
		t.Fatalf("unexpected diagnostics:\n%s", diags)
	}
	if want := `{"max_length":2000,"reconnect":"5s","require_mention":true}`; string(raw) != want {
		t.Errorf("config = %s, want %s", raw, want)
	}

	raw, diags = platformConfig(t, `platform "discord" {}`, nil, nil)
	if diags != "" || string(raw) != "{}" {
		t.Errorf("no schema, no block: %s, %q", raw, diags)
	}

	// A Config not made by Parse still decodes (with the real environment).
	c := &Config{}
	raw, d := c.DecodePlatformConfig(&Platform{Name: "x", Plugin: "x"}, optional)
	if d.HasErrors() || !strings.Contains(string(raw), `"require_mention":true`) {
		t.Errorf("zero Config: %s, %s", raw, FormatDiagnostics(d))
	}
}

func TestDecodePlatformConfigDiagnostics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		src    string
		schema []shared.Attribute
		want   [][2]string
	}{
		{"typo", "platform \"discord\" {\n  config {\n    tokne = \"x\"\n  }\n}", discordSchema, [][2]string{
			{"config.hcl:2:3: Missing required argument", `The plugin "discord" requires token (string) in the config block of platform "discord". token: the bot token`},
			{"config.hcl:3:5: Unsupported argument", `The plugin "discord" has no setting named "tokne". Did you mean "token"?`},
		}},
		{"unknown without a near name", "platform \"discord\" {\n  config {\n    token  = \"x\"\n    colour = \"red\"\n  }\n}", discordSchema, [][2]string{
			{"config.hcl:4:5: Unsupported argument", `no setting named "colour". It takes "token", "require_mention", "intents", "reconnect", "max_length" and "guild".`},
		}},
		{"plugin without settings", "platform \"discord\" {\n  config {\n    token = \"x\"\n  }\n}", nil, [][2]string{
			{"config.hcl:3:5: Unsupported argument", `no setting named "token". It takes no settings.`},
		}},
		{"nested block", "platform \"discord\" {\n  config {\n    token = \"x\"\n    extra {\n    }\n  }\n}", discordSchema, [][2]string{
			{"config.hcl:4:5: Unexpected \"extra\" block", "Blocks are not allowed here."},
		}},
		{"missing block", "\nplatform \"discord\" {\n  plugin = \"discord\"\n}", discordSchema, [][2]string{
			{"config.hcl:2:1: Missing required argument", `requires a config block in platform "discord" with token (string)`},
		}},
		{"null required", "platform \"discord\" {\n  config {\n    token = null\n  }\n}", discordSchema, [][2]string{
			{"config.hcl:2:3: Missing required argument", "requires token"},
		}},
		{"wrong bool", "platform \"discord\" {\n  config {\n    token = \"x\"\n    require_mention = \"maybe\"\n  }\n}", discordSchema, [][2]string{
			{"config.hcl:4:5: Incorrect attribute value type", "require_mention: a bool is required"},
		}},
		{"wrong number", "platform \"discord\" {\n  config {\n    token      = \"x\"\n    max_length = \"lots\"\n  }\n}", discordSchema, [][2]string{
			{"config.hcl:4:5: Incorrect attribute value type", "max_length: a number is required"},
		}},
		{"wrong list", "platform \"discord\" {\n  config {\n    token   = \"x\"\n    intents = \"guilds\"\n  }\n}", discordSchema, [][2]string{
			{"config.hcl:4:5: Incorrect attribute value type", "intents: list of string required"},
		}},
		{"null in list", "platform \"discord\" {\n  config {\n    token   = \"x\"\n    intents = [\"a\", null]\n  }\n}", discordSchema, [][2]string{
			{"config.hcl:4:5: Invalid value", "intents must be a list of strings; it holds a null"},
		}},
		{"wrong string", "platform \"discord\" {\n  config {\n    token = [\"x\"]\n  }\n}", discordSchema, [][2]string{
			{"config.hcl:3:5: Incorrect attribute value type", "token: string required"},
		}},
		{"bad duration", "platform \"discord\" {\n  config {\n    token     = \"x\"\n    reconnect = \"soon\"\n  }\n}", discordSchema, [][2]string{
			{"config.hcl:4:5: Invalid duration", `reconnect must be a positive duration such as "30s", "5m" or "1h30m", not "soon".`},
		}},
		{"env unset", "platform \"discord\" {\n  config {\n    token = env(\"DISCORD_TOKEN\")\n  }\n}", discordSchema, [][2]string{
			{"config.hcl:3:13: Error in function call", "environment variable DISCORD_TOKEN is not set"},
		}},
		{"bad schema default", "platform \"discord\" {\n  config {}\n}", []shared.Attribute{{Name: "n", Type: shared.TypeNumber, Default: "ten"}}, [][2]string{
			{"config.hcl:2:3: Invalid plugin schema", `declares a default for n that is not a number: got string`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := mustParse(t, tt.src, nil)
			raw, diags := c.DecodePlatformConfig(c.PlatformByName("discord"), tt.schema)
			if raw != nil {
				t.Errorf("got config %s with errors", raw)
			}
			checkDiags(t, diags, tt.want...)
		})
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	raw := json.RawMessage(`{"token":"SECRET123","guild":"g1","require_mention":true}`)
	got := string(Redacted(raw, discordSchema))
	if want := `{"guild":"g1","require_mention":true,"token":"(sensitive)"}`; got != want {
		t.Errorf("Redacted = %s, want %s", got, want)
	}
	for _, bad := range []string{`"SECRET123"`, `["SECRET123"]`, `SECRET123`, `null`, ``} {
		if got := string(Redacted(json.RawMessage(bad), discordSchema)); strings.Contains(got, "SECRET123") || !json.Valid([]byte(got)) {
			t.Errorf("Redacted(%q) = %q", bad, got)
		}
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	const base = `
platform "a" {
  plugin = "http"
  config {
    listen = env("LISTEN", "127.0.0.1:8788")
  }
}
platform "b" {
  plugin = "http"
  config {
    listen = "127.0.0.1:8788"
  }
}
`
	fp := func(src string, vars map[string]string, name string) string {
		c := mustParse(t, src, vars)
		return Fingerprint(c, c.PlatformByName(name))
	}
	a := fp(base, nil, "a")
	if a != fp(base, nil, "a") {
		t.Error("fingerprint of the same config differs between loads")
	}
	if a != fp(base, nil, "b") {
		t.Error("fingerprint depends on the platform's name or on how a value is written")
	}
	if len(a) != 64 {
		t.Errorf("fingerprint %q is not a hex SHA-256", a)
	}
	changes := map[string]string{
		"config value":  strings.Replace(base, `"127.0.0.1:8788")`, `"127.0.0.1:9999")`, 1),
		"enabled":       strings.Replace(base, `plugin = "http"`, "plugin = \"http\"\n  enabled = false", 1),
		"plugin":        strings.Replace(base, `plugin = "http"`, `plugin = "http2"`, 1),
		"session_scope": strings.Replace(base, `plugin = "http"`, "plugin = \"http\"\n  session_scope = \"user\"", 1),
		"sha256":        strings.Replace(base, `plugin = "http"`, "plugin = \"http\"\n  sha256 = \""+strings.Repeat("0", 64)+"\"", 1),
		"restart":       strings.Replace(base, `plugin = "http"`, "plugin = \"http\"\n  restart {\n    max_failures = 9\n  }", 1),
		"plugin_dir":    "gateway {\n  plugin_dir = \"other\"\n}\n" + base,
		"new setting":   strings.Replace(base, `listen = env`, "debug = true\n    listen = env", 1),
	}
	for what, src := range changes {
		if fp(src, nil, "a") == a {
			t.Errorf("changing %s does not change the fingerprint", what)
		}
	}
	if fp(base, map[string]string{"LISTEN": ":1"}, "a") == a {
		t.Error("changing an environment variable the config reads does not change the fingerprint")
	}
	broken := "platform \"a\" {\n  config {\n    x = env(\"UNSET\")\n  }\n}"
	if fp(broken, nil, "a") == fp(strings.Replace(broken, "UNSET", "UNSET2", 1), nil, "a") {
		t.Error("two different broken configs have the same fingerprint")
	}
}
