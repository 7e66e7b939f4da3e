package adapter

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/plughost/gateway/shared"
)

// schema is the plugin's config block, as the host validates it.
var schema = []shared.Attribute{
	{Name: "homeserver", Type: shared.TypeString, Required: true,
		Description: "Base URL of the bot account's homeserver, e.g. https://matrix.example.org."},
	{Name: "access_token", Type: shared.TypeString, Required: true, Sensitive: true,
		Description: "Access token of the bot account (from a login or the homeserver's admin API)."},
	{Name: "require_mention", Type: shared.TypeBool, Default: true,
		Description: "In rooms with more than two members, answer only messages that mention the bot; direct chats are always answered."},
	{Name: "auto_join", Type: shared.TypeBool, Default: true,
		Description: "Accept room invites (only from allowed_users when that list is set)."},
	{Name: "allowed_users", Type: shared.TypeListOfString, Default: []string{},
		Description: "User ids (@alice:example.org) allowed to talk to the bot; empty allows everyone."},
	{Name: "allowed_rooms", Type: shared.TypeListOfString, Default: []string{},
		Description: "Room ids (!abc:example.org) the bot answers in; empty allows all."},
	{Name: "typing", Type: shared.TypeBool, Default: true,
		Description: "Send typing notifications while the agent works."},
}

// settings is the decoded, validated config block.
type settings struct {
	homeserver     *url.URL
	token          string
	requireMention bool
	autoJoin       bool
	allowedUsers   set
	allowedRooms   set
	typing         bool
}

// rawConfig mirrors the JSON the host sends; pointers tell unset from false.
type rawConfig struct {
	Homeserver     string   `json:"homeserver"`
	AccessToken    string   `json:"access_token"`
	RequireMention *bool    `json:"require_mention"`
	AutoJoin       *bool    `json:"auto_join"`
	AllowedUsers   []string `json:"allowed_users"`
	AllowedRooms   []string `json:"allowed_rooms"`
	Typing         *bool    `json:"typing"`
}

// parseSettings decodes and validates cfg. Every problem is a
// *shared.FatalError: a config that is wrong now stays wrong on restart.
func parseSettings(cfg shared.Config) (settings, error) {
	var raw rawConfig
	if err := cfg.Decode(&raw); err != nil {
		return settings{}, invalidConfig(err.Error(), "")
	}
	s := settings{
		token:          strings.TrimSpace(raw.AccessToken),
		requireMention: boolOr(raw.RequireMention, true),
		autoJoin:       boolOr(raw.AutoJoin, true),
		allowedUsers:   newSet(raw.AllowedUsers),
		allowedRooms:   newSet(raw.AllowedRooms),
		typing:         boolOr(raw.Typing, true),
	}
	if s.token == "" {
		return settings{}, invalidConfig("access_token is empty",
			"set access_token to the bot account's access token, e.g. access_token = env(\"MATRIX_TOKEN\")")
	}
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(raw.Homeserver), "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return settings{}, invalidConfig(fmt.Sprintf("homeserver %q is not an http(s) URL", raw.Homeserver),
			"give the homeserver's base URL, e.g. homeserver = \"https://matrix.example.org\"")
	}
	if u.User != nil {
		return settings{}, invalidConfig("homeserver must not carry credentials",
			"put the token in access_token, not in the URL")
	}
	s.homeserver = u
	return s, nil
}

func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

// set is a set of ids; the empty set allows everything.
type set map[string]struct{}

func newSet(ids []string) set {
	s := set{}
	for _, id := range ids {
		if id = strings.TrimSpace(id); id != "" {
			s[id] = struct{}{}
		}
	}
	return s
}

// allows reports whether id passes an allowlist: an empty list allows all.
func (s set) allows(id string) bool {
	if len(s) == 0 {
		return true
	}
	_, ok := s[id]
	return ok
}
