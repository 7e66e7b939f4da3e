package config

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"

	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// PlatformByName returns the platform named name, or nil.
func (c *Config) PlatformByName(name string) *Platform {
	for _, p := range c.Platforms {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// fingerprintKey keys the fingerprint HMAC. Fingerprints only need to
// compare within one process (old config against reloaded config); a
// random key means one that reaches a log or the status endpoint cannot
// be used to guess a short secret from the config block.
var fingerprintKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // never fails on Linux; a zero key would still work
	return k
}()

// Fingerprint returns a digest of platform p's effective settings: its
// plugin binary's path, enabled, session scope, checksum, restart policy,
// and the values of its config block's attributes as evaluated now (so a
// changed environment variable changes it too). On reload, a platform
// whose fingerprint is unchanged keeps running untouched. The name is not
// part of it: platforms are matched by name. Fingerprints are stable
// within one process, not across processes.
func Fingerprint(c *Config, p *Platform) string {
	settings := struct {
		Path         string            `json:"path"`
		Enabled      bool              `json:"enabled"`
		SessionScope string            `json:"session_scope"`
		SHA256       string            `json:"sha256"`
		Restart      Restart           `json:"restart"`
		Config       []json.RawMessage `json:"config"`
	}{c.PluginPath(p), p.Enabled, p.SessionScope, p.SHA256, p.Restart, c.configValues(p)}
	b, err := json.Marshal(settings)
	if err != nil {
		// Every part is valid JSON, so this cannot happen; refuse to call
		// two platforms equal rather than hash nothing.
		b = []byte(err.Error() + p.Name)
	}
	mac := hmac.New(sha256.New, fingerprintKey)
	mac.Write(b)
	return hex.EncodeToString(mac.Sum(nil))
}

// configValues evaluates p's config block without a schema, for
// Fingerprint: one ["name", value] pair per attribute, in name order.
// Attributes that do not evaluate (and nested blocks) are represented by
// their diagnostics, so editing them still changes the fingerprint.
func (c *Config) configValues(p *Platform) []json.RawMessage {
	if p.Body == nil {
		return nil
	}
	ctx := c.evalCtx
	if ctx == nil {
		ctx = defaultEvalContext()
	}
	attrs, diags := p.Body.JustAttributes()
	names := make([]string, 0, len(attrs))
	for name := range attrs {
		names = append(names, name)
	}
	slices.Sort(names)
	var out []json.RawMessage
	for _, name := range names {
		v, vdiags := attrs[name].Expr.Value(ctx)
		diags = append(diags, vdiags...)
		var value any = "(invalid)"
		if !vdiags.HasErrors() && v.IsWhollyKnown() {
			if raw, err := json.Marshal(ctyjson.SimpleJSONValue{Value: v}); err == nil {
				value = json.RawMessage(raw)
			}
		}
		pair, _ := json.Marshal([]any{name, value})
		out = append(out, pair)
	}
	if diags.HasErrors() {
		pair, _ := json.Marshal([]any{"(diagnostics)", FormatDiagnostics(diags)})
		out = append(out, pair)
	}
	return out
}
