package config

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Access is a platform's access block: who may talk to the agent in direct
// messages. Group chats stay governed by mention gating and the plugin's
// own lists.
type Access struct {
	// DM is "pairing", "open" or "allowlist"; default DefaultDM, or
	// "open" for the HTTP plugin (see DMDefault).
	DM string
	// AllowedUsers are always answered in DMs (the only ones under
	// "allowlist").
	AllowedUsers []string
}

// Limits is the agent block's limits block, per user per platform; 0 is
// no limit.
type Limits struct {
	MessagesPerMinute int
	TokensPerDay      int
}

// DefaultDM is the DM policy of a chat platform whose access block sets
// none.
const DefaultDM = "pairing"

// DMDefault returns the DM policy of plugin when its access block sets
// none: "open" for the HTTP plugin, whose callers authenticate with its
// auth_token and have no DM to pair in; DefaultDM for every other (a chat
// platform is public: anyone who finds the bot can DM it). The host decides
// by plugin name rather than asking the plugin, so a plugin cannot open
// itself up and a new chat plugin is safe by default.
func DMDefault(plugin string) string {
	if plugin == "http" {
		return "open"
	}
	return DefaultDM
}

// AnswersEveryMessage reports whether each message to plugin waits for an
// answer (the HTTP plugin: a request gets one reply or times out), so that
// the access policy answers every message it refuses rather than only the
// first of a series.
func AnswersEveryMessage(plugin string) bool { return plugin == "http" }

var accessSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "dm"}, {Name: "allowed_users"},
}}

// decode decodes an access block over the defaults in a.
func (a *Access) decode(d *decoder, body hcl.Body) {
	content, diags := body.Content(accessSchema)
	d.diags = append(d.diags, diags...)
	attrs := content.Attributes
	d.oneOf(attrs, "dm", &a.DM, "pairing", "open", "allowlist")
	if v, ok := d.value(attrs["allowed_users"], cty.List(cty.String)); ok {
		a.AllowedUsers = make([]string, 0, v.LengthInt())
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			if e.IsNull() {
				d.errorf(attrs["allowed_users"].Range, "Invalid allowed_users", "allowed_users must not hold null.")
				continue
			}
			a.AllowedUsers = append(a.AllowedUsers, e.AsString())
		}
	}
}

var limitsSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "messages_per_minute"}, {Name: "tokens_per_day"},
}}

// decode decodes a limits block over the defaults in l.
func (l *Limits) decode(d *decoder, body hcl.Body) {
	content, diags := body.Content(limitsSchema)
	d.diags = append(d.diags, diags...)
	d.integer(content.Attributes, "messages_per_minute", 0, &l.MessagesPerMinute)
	d.integer(content.Attributes, "tokens_per_day", 0, &l.TokensPerDay)
}

// onlyBlock returns the single block of type typ in blocks, reporting any
// duplicate; nil when there is none.
func (d *decoder) onlyBlock(blocks hcl.Blocks, typ, in string) *hcl.Block {
	var first *hcl.Block
	for _, b := range blocks {
		if b.Type != typ {
			continue
		}
		if first != nil {
			d.errorf(b.DefRange, "Duplicate "+typ+" block",
				"Only one %s block is allowed in %s; the first is at %s.", typ, in, shortRange(first.DefRange))
			continue
		}
		first = b
	}
	return first
}
