package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// decoder evaluates the attributes of the gateway's own blocks into Go
// values, collecting diagnostics as it goes so one run reports every
// problem in the file. A value problem is reported at the attribute's range
// (it starts at the attribute's name).
type decoder struct {
	ctx   *hcl.EvalContext
	diags hcl.Diagnostics
}

// errorf records an error diagnostic at rng.
func (d *decoder) errorf(rng hcl.Range, summary, format string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	})
}

// value evaluates attr and converts it to ty. It returns false when the
// attribute is absent, null, or invalid (then with a diagnostic), so the
// caller keeps its default.
func (d *decoder) value(attr *hcl.Attribute, ty cty.Type) (cty.Value, bool) {
	if attr == nil {
		return cty.NilVal, false
	}
	v, diags := attr.Expr.Value(d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() || v.IsNull() {
		return cty.NilVal, false
	}
	if !v.IsWhollyKnown() {
		d.errorf(attr.Range, "Unknown value", "The value of %s cannot be known before the gateway runs.", attr.Name)
		return cty.NilVal, false
	}
	v, err := convert.Convert(v, ty)
	if err != nil {
		// err says what was expected ("string required"); it never
		// quotes the value, which may be a secret.
		d.errorf(attr.Range, "Incorrect attribute value type", "Inappropriate value for %s: %s.", attr.Name, err)
		return cty.NilVal, false
	}
	v, _ = v.Unmark()
	return v, true
}

// str decodes a string attribute into dst. It returns the attribute when
// it held a value, nil when it is absent, null or invalid.
func (d *decoder) str(attrs hcl.Attributes, name string, dst *string) *hcl.Attribute {
	attr := attrs[name]
	v, ok := d.value(attr, cty.String)
	if !ok {
		return nil
	}
	*dst = v.AsString()
	return attr
}

// boolean decodes a bool attribute into dst.
func (d *decoder) boolean(attrs hcl.Attributes, name string, dst *bool) {
	if v, ok := d.value(attrs[name], cty.Bool); ok {
		*dst = v.True()
	}
}

// integer decodes a whole number of at least min into dst.
func (d *decoder) integer(attrs hcl.Attributes, name string, min int, dst *int) {
	attr := attrs[name]
	v, ok := d.value(attr, cty.Number)
	if !ok {
		return
	}
	bf := v.AsBigFloat()
	i, acc := bf.Int64()
	switch {
	case acc != big.Exact || i > math.MaxInt32 || i < math.MinInt32:
		d.errorf(attr.Range, "Invalid number", "%s must be a whole number, not %s.", name, bf.Text('g', 10))
	case int(i) < min && min == 0:
		d.errorf(attr.Range, "Invalid number", "%s must not be negative, not %d.", name, i)
	case int(i) < min:
		d.errorf(attr.Range, "Invalid number", "%s must be at least %d, not %d.", name, min, i)
	default:
		*dst = int(i)
	}
}

// duration decodes a positive duration written as a string ("30s", "2m").
func (d *decoder) duration(attrs hcl.Attributes, name string, dst *time.Duration) {
	attr := attrs[name]
	v, ok := d.value(attr, cty.String)
	if !ok {
		return
	}
	dur, err := parseDuration(v.AsString())
	switch {
	case errors.Is(err, errNotPositive):
		d.errorf(attr.Range, "Invalid duration", "%s must be positive, not %q.", name, v.AsString())
	case err != nil:
		d.errorf(attr.Range, "Invalid duration", "%s must be a duration such as \"30s\", \"5m\" or \"1h30m\", not %q.", name, v.AsString())
	default:
		*dst = dur
	}
}

// oneOf decodes a string attribute that must be one of allowed.
func (d *decoder) oneOf(attrs hcl.Attributes, name string, dst *string, allowed ...string) {
	attr := attrs[name]
	v, ok := d.value(attr, cty.String)
	if !ok {
		return
	}
	if s := v.AsString(); slices.Contains(allowed, s) {
		*dst = s
	} else {
		d.errorf(attr.Range, "Invalid value", "%s must be %s, not %q.", name, orList(allowed), s)
	}
}

// stringMap decodes a map of strings (an object literal such as headers).
func (d *decoder) stringMap(attrs hcl.Attributes, name string, dst *map[string]string) {
	attr := attrs[name]
	v, ok := d.value(attr, cty.Map(cty.String))
	if !ok {
		return
	}
	m := make(map[string]string, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		k, e := it.Element()
		if e.IsNull() {
			d.errorf(attr.Range, "Invalid value", "%s[%q] must be a string, not null.", name, k.AsString())
			continue
		}
		m[k.AsString()] = e.AsString()
	}
	*dst = m
}

// stringList decodes a list of strings.
func (d *decoder) stringList(attrs hcl.Attributes, name string, dst *[]string) {
	attr := attrs[name]
	v, ok := d.value(attr, cty.List(cty.String))
	if !ok {
		return
	}
	out := make([]string, 0, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() {
			d.errorf(attr.Range, "Invalid value", "%s must hold strings, not null.", name)
			continue
		}
		out = append(out, e.AsString())
	}
	*dst = out
}

// The ways parseDuration fails. They never quote the text, which may come
// from a sensitive attribute.
var (
	errNotDuration = errors.New(`not a duration such as "30s", "5m" or "1h30m"`)
	errNotPositive = errors.New("not positive")
)

// parseDuration parses a positive duration such as "30s" or "1h30m".
func parseDuration(s string) (time.Duration, error) {
	dur, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, errNotDuration
	}
	if dur <= 0 {
		return 0, errNotPositive
	}
	return dur, nil
}

// orList renders ["a", "b", "c"] as `"a", "b" or "c"`.
func orList(words []string) string {
	return list(words, "or")
}

// list renders ["a", "b", "c"] as `"a", "b" CONJ "c"`.
func list(words []string, conj string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = fmt.Sprintf("%q", w)
	}
	switch len(q) {
	case 0:
		return "nothing"
	case 1:
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " " + conj + " " + q[len(q)-1]
}
