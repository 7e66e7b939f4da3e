package config

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/plughost/gateway/shared"
)

// DecodePlatformConfig decodes p's config {} block against the schema its
// plugin describes and returns it as the JSON object a plugin's Configure
// receives (shared.Config.Raw): every attribute that is set or has a
// default, keys sorted, so equal settings give equal bytes.
//
// It reports unknown attributes (suggesting the nearest known one), values
// of the wrong type, bad durations and missing required attributes, and
// returns nil when there are errors. Its diagnostics never quote the value
// of a sensitive attribute.
func (c *Config) DecodePlatformConfig(p *Platform, schema []shared.Attribute) (json.RawMessage, hcl.Diagnostics) {
	ctx := c.evalCtx
	if ctx == nil {
		ctx = defaultEvalContext()
	}
	d := &decoder{ctx: ctx}

	var attrs hcl.Attributes
	missingAt := p.DeclRange
	if p.Body != nil {
		missingAt = p.ConfigRange
		bodySchema := &hcl.BodySchema{}
		for _, a := range schema {
			bodySchema.Attributes = append(bodySchema.Attributes, hcl.AttributeSchema{Name: a.Name})
		}
		content, remain, diags := p.Body.PartialContent(bodySchema)
		d.diags = append(d.diags, diags...)
		attrs = content.Attributes
		d.unknownSettings(p, remain, schema)
	}

	out := make(map[string]json.RawMessage, len(schema))
	for _, a := range schema {
		reported := len(d.diags)
		if raw, ok := d.setting(attrs[a.Name], a); ok {
			out[a.Name] = raw
			continue
		}
		if len(d.diags) > reported {
			continue
		}
		switch {
		case a.Default != nil:
			raw, err := defaultJSON(a)
			if err != nil {
				d.errorf(missingAt, "Invalid plugin schema",
					"The plugin %q declares a default for %s that is not a %s: %s.", p.Plugin, a.Name, a.Type, err)
				continue
			}
			out[a.Name] = raw
		case a.Required:
			detail := fmt.Sprintf("The plugin %q requires %s (%s) in the config block of platform %q.", p.Plugin, a.Name, a.Type, p.Name)
			if p.Body == nil {
				detail = fmt.Sprintf("The plugin %q requires a config block in platform %q with %s (%s).", p.Plugin, p.Name, a.Name, a.Type)
			}
			if a.Description != "" {
				detail += " " + a.Name + ": " + a.Description
			}
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing required argument",
				Detail:   detail,
				Subject:  missingAt.Ptr(),
			})
		}
	}
	sortDiagnostics(d.diags)
	if d.diags.HasErrors() {
		return nil, d.diags
	}
	raw, err := json.Marshal(out)
	if err != nil {
		d.errorf(missingAt, "Cannot encode platform config", "%s", fmt.Errorf("encoding config of platform %q: %w", p.Name, err))
		return nil, d.diags
	}
	return raw, d.diags
}

// unknownSettings reports every attribute and block in remain, the part
// of a config block the schema does not describe.
func (d *decoder) unknownSettings(p *Platform, remain hcl.Body, schema []shared.Attribute) {
	names := make([]string, len(schema))
	for i, a := range schema {
		names[i] = a.Name
	}
	// JustAttributes also reports any nested block as not allowed.
	unknown, diags := remain.JustAttributes()
	d.diags = append(d.diags, diags...)
	sorted := make([]*hcl.Attribute, 0, len(unknown))
	for _, a := range unknown {
		sorted = append(sorted, a)
	}
	slices.SortFunc(sorted, func(a, b *hcl.Attribute) int { return a.Range.Start.Byte - b.Range.Start.Byte })
	for _, a := range sorted {
		detail := fmt.Sprintf("The plugin %q has no setting named %q.", p.Plugin, a.Name)
		switch s := suggest(a.Name, names); {
		case s != "":
			detail += fmt.Sprintf(" Did you mean %q?", s)
		case len(names) == 0:
			detail += " It takes no settings."
		default:
			detail += " It takes " + list(names, "and") + "."
		}
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unsupported argument",
			Detail:   detail,
			Subject:  a.NameRange.Ptr(),
		})
	}
}

// suggest returns the name in names nearest to typo, or "" when none is
// near enough to be what the user meant.
func suggest(typo string, names []string) string {
	best, bestDist := "", 3 // at most two edits away
	for _, n := range names {
		if dist := levenshtein.Distance(typo, n, nil); dist < bestDist {
			best, bestDist = n, dist
		}
	}
	return best
}

// setting decodes one attribute of a plugin's config block to JSON. It
// returns false when attr is absent or null (the caller applies the
// default) or invalid (with a diagnostic).
func (d *decoder) setting(attr *hcl.Attribute, a shared.Attribute) (json.RawMessage, bool) {
	var (
		raw []byte
		err error
	)
	switch a.Type {
	case shared.TypeString:
		v, ok := d.value(attr, cty.String)
		if !ok {
			return nil, false
		}
		raw, err = json.Marshal(v.AsString())
	case shared.TypeBool:
		v, ok := d.value(attr, cty.Bool)
		if !ok {
			return nil, false
		}
		raw, err = json.Marshal(v.True())
	case shared.TypeNumber:
		v, ok := d.value(attr, cty.Number)
		if !ok {
			return nil, false
		}
		raw, err = ctyjson.Marshal(v, cty.Number)
	case shared.TypeListOfString:
		v, ok := d.value(attr, cty.List(cty.String))
		if !ok {
			return nil, false
		}
		list := make([]string, 0, v.LengthInt())
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			if e.IsNull() {
				d.errorf(attr.Range, "Invalid value", "%s must be a list of strings; it holds a null.", a.Name)
				return nil, false
			}
			list = append(list, e.AsString())
		}
		raw, err = json.Marshal(list)
	case shared.TypeDuration:
		v, ok := d.value(attr, cty.String)
		if !ok {
			return nil, false
		}
		if _, perr := parseDuration(v.AsString()); perr != nil {
			detail := fmt.Sprintf("%s must be a positive duration such as \"30s\", \"5m\" or \"1h30m\", not %q.", a.Name, v.AsString())
			if a.Sensitive {
				detail = fmt.Sprintf("%s must be a positive duration such as \"30s\", \"5m\" or \"1h30m\".", a.Name)
			}
			d.errorf(attr.Range, "Invalid duration", "%s", detail)
			return nil, false
		}
		raw, err = json.Marshal(strings.TrimSpace(v.AsString()))
	default:
		if attr != nil {
			d.errorf(attr.Range, "Invalid plugin schema", "The plugin declares %s with the unknown type %s.", a.Name, a.Type)
		}
		return nil, false
	}
	if err != nil {
		d.errorf(attr.Range, "Cannot encode value", "%s", fmt.Errorf("encoding %s: %w", a.Name, err))
		return nil, false
	}
	return raw, true
}

// defaultJSON encodes a schema attribute's default, checking that it
// matches the attribute's type.
func defaultJSON(a shared.Attribute) (json.RawMessage, error) {
	def := a.Default
	ok := false
	switch a.Type {
	case shared.TypeString:
		_, ok = def.(string)
	case shared.TypeBool:
		_, ok = def.(bool)
	case shared.TypeNumber:
		switch def.(type) {
		case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
			ok = true
		}
	case shared.TypeListOfString:
		_, ok = def.([]string)
	case shared.TypeDuration:
		switch v := def.(type) {
		case time.Duration:
			def, ok = v.String(), v > 0
		case string:
			_, err := parseDuration(v)
			ok = err == nil
		}
	}
	if !ok {
		return nil, fmt.Errorf("got %T", a.Default)
	}
	raw, err := json.Marshal(def)
	if err != nil {
		return nil, fmt.Errorf("encoding default of %s: %w", a.Name, err)
	}
	return raw, nil
}

// SensitivePlaceholder replaces sensitive values wherever the gateway
// prints or logs them.
const SensitivePlaceholder = "(sensitive)"

// Redacted returns raw, a platform config as DecodePlatformConfig returns
// it, with the value of every attribute the schema marks sensitive
// replaced by SensitivePlaceholder, for printing and logging. Whatever is
// not a JSON object comes back as a JSON string saying so, never as itself.
func Redacted(raw json.RawMessage, schema []shared.Attribute) json.RawMessage {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return json.RawMessage(`"(not a JSON object)"`)
	}
	placeholder, _ := json.Marshal(SensitivePlaceholder)
	for _, a := range schema {
		if _, set := obj[a.Name]; set && a.Sensitive {
			obj[a.Name] = placeholder
		}
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return json.RawMessage(`"(not a JSON object)"`)
	}
	return out
}
