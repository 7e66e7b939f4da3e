package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/plughost/gateway/shared"
)

// secretSchema declares every type sensitive, to check that no kind of
// diagnostic quotes a sensitive value.
var secretSchema = []shared.Attribute{
	{Name: "token", Type: shared.TypeString, Required: true, Sensitive: true},
	{Name: "pin", Type: shared.TypeNumber, Sensitive: true},
	{Name: "flag", Type: shared.TypeBool, Sensitive: true},
	{Name: "keys", Type: shared.TypeListOfString, Sensitive: true},
	{Name: "ttl", Type: shared.TypeDuration, Sensitive: true},
}

func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	const secret = "SECRET123"
	src := `
provider "openai" {
  base_url = "https://api.example.com/v1"
  api_key  = "sk-SECRET123"
  headers  = { Authorization = "Bearer SECRET123" }
}
platform "discord" {
  config {
    token = "SECRET123"
  }
}
`
	c := mustParse(t, src, nil)
	p := c.Provider("openai")
	if p.APIKey != "sk-SECRET123" || p.Headers["Authorization"] != "Bearer SECRET123" {
		t.Fatalf("provider not decoded: key %q", p.APIKey)
	}
	printed := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x"} {
		printed[verb+" *Config"] = fmt.Sprintf(verb, c)
		printed[verb+" Config"] = fmt.Sprintf(verb, *c)
		printed[verb+" *Provider"] = fmt.Sprintf(verb, p)
		printed[verb+" Provider"] = fmt.Sprintf(verb, *p)
		printed[verb+" Providers"] = fmt.Sprintf(verb, c.Providers)
		printed[verb+" *Platform"] = fmt.Sprintf(verb, c.Platforms[0])
	}
	printed["String"] = p.String()
	printed["GoString"] = p.GoString()
	for what, v := range map[string]any{"Config": c, "Provider": p, "Providers": c.Providers, "Platform": c.Platforms[0]} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%s): %v", what, err)
		}
		printed["json "+what] = string(b)
	}
	for what, s := range printed {
		if strings.Contains(s, secret) {
			t.Errorf("%s leaks the secret: %s", what, s)
		}
	}
	if !strings.Contains(printed["%+v *Provider"], "APIKey:(sensitive)") {
		t.Errorf("%%+v of a provider does not say the key is set: %s", printed["%+v *Provider"])
	}

	raw, diags := c.DecodePlatformConfig(c.PlatformByName("discord"), secretSchema)
	if diags.HasErrors() {
		t.Fatal(FormatDiagnostics(diags))
	}
	if red := string(Redacted(raw, secretSchema)); strings.Contains(red, secret) || !strings.Contains(red, `"token":"(sensitive)"`) {
		t.Errorf("Redacted = %s", red)
	}
}

func TestSecretsNotInDiagnostics(t *testing.T) {
	t.Parallel()
	const secret = "SECRET123"
	srcs := map[string]string{
		"string from a list":   `token = ["SECRET123"]`,
		"number":               `pin = "SECRET123"`,
		"bool":                 `flag = "SECRET123"`,
		"list":                 `keys = "SECRET123"`,
		"duration":             `ttl = "SECRET123"`,
		"operator":             `token = "SECRET123" + 1`,
		"negation":             `flag = !"SECRET123"`,
		"conditional":          `token = "SECRET123" ? "a" : "b"`,
		"typo":                 `tokne = "SECRET123"`,
		"function":             `token = upper(["SECRET123"])`,
		"index":                `token = "SECRET123"[0]`,
		"interpolated in list": `keys = ["${"SECRET123"}", null]`,
	}
	for name, attr := range srcs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src := "platform \"discord\" {\n  config {\n    " + attr + "\n  }\n}\nprovider \"x\" {\n  type = \"openai\"\n  api_key = [\"SECRET123\"]\n}"
			c, diags := parse([]byte(src), "config.hcl", env(nil))
			if c == nil {
				t.Fatalf("no config: %s", FormatDiagnostics(diags))
			}
			_, pdiags := c.DecodePlatformConfig(c.PlatformByName("discord"), secretSchema)
			diags = append(diags, pdiags...)
			got := FormatDiagnostics(diags)
			if !strings.Contains(got, "config.hcl:3:") {
				t.Errorf("no diagnostic at line 3:\n%s", got)
			}
			if strings.Contains(got, secret) {
				t.Errorf("diagnostics leak the secret:\n%s", got)
			}
		})
	}
}
