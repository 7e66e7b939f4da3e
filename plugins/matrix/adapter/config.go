package adapter

import (
	"net/url"
	"strings"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
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
	homeserver *url.URL
	token      string
	autoJoin   bool
	access     kit.Access // allowed_users → Users, allowed_rooms → Chats
	typing     bool
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
		token:    strings.TrimSpace(raw.AccessToken),
		autoJoin: boolOr(raw.AutoJoin, true),
		access: kit.Access{Users: kit.NewIDSet(raw.AllowedUsers), Chats: kit.NewIDSet(raw.AllowedRooms),
			RequireMention: boolOr(raw.RequireMention, true)},
		typing: boolOr(raw.Typing, true),
	}
	if s.token == "" {
		return settings{}, invalidConfig("access_token is empty",
			"set access_token to the bot account's access token, e.g. access_token = env(\"MATRIX_TOKEN\")")
	}
	if strings.TrimSpace(raw.Homeserver) == "" {
		return settings{}, invalidConfig("homeserver is empty",
			"give the homeserver's base URL, e.g. homeserver = \"https://matrix.example.org\"")
	}
	u, err := kit.ParseURL("homeserver", raw.Homeserver, "")
	if err != nil {
		return settings{}, err
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
