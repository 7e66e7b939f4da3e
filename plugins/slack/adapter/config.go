package adapter

import (
	"fmt"
	"strings"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// DefaultAPIURL is Slack's Web API base.
const DefaultAPIURL = "https://slack.com/api/"

// schema is the plugin's config block, as the host validates it.
var schema = []shared.Attribute{
	{Name: "bot_token", Type: shared.TypeString, Required: true, Sensitive: true,
		Description: "Bot User OAuth Token (xoxb-…) from the Slack app's OAuth & Permissions page."},
	{Name: "app_token", Type: shared.TypeString, Required: true, Sensitive: true,
		Description: "App-level token (xapp-…) with the connections:write scope, from the app's Basic Information page; opens Socket Mode connections."},
	{Name: "api_url", Type: shared.TypeString, Default: DefaultAPIURL,
		Description: "Web API base URL; the Socket Mode websocket URL comes from its apps.connections.open answer."},
	{Name: "require_mention", Type: shared.TypeBool, Default: true,
		Description: "In channels, answer only messages that mention the bot (and replies in threads it answered in); direct messages are always answered."},
	{Name: "reply_in_thread", Type: shared.TypeBool, Default: true,
		Description: "Answer a channel message in a thread under it (each thread is its own session); messages already in a thread are always answered there."},
	{Name: "allowed_users", Type: shared.TypeListOfString, Default: []string{},
		Description: "Slack user ids (U…) allowed to talk to the bot; empty allows everyone."},
	{Name: "allowed_channels", Type: shared.TypeListOfString, Default: []string{},
		Description: "Channel ids (C…, G…, D…) the bot answers in; empty allows all."},
	{Name: "respond_to_bots", Type: shared.TypeBool, Default: false,
		Description: "Answer messages written by other bots (never its own)."},
}

// settings is the decoded, validated config block.
type settings struct {
	botToken      string
	appToken      string
	apiURL        string // ends with "/", as slack-go joins method names onto it
	replyInThread bool
	// access holds allowed_users (Users), allowed_channels (Chats),
	// require_mention and respond_to_bots (AllowBots).
	access kit.Access
}

// rawConfig mirrors the JSON the host sends; pointers tell unset from false.
type rawConfig struct {
	BotToken        string   `json:"bot_token"`
	AppToken        string   `json:"app_token"`
	APIURL          string   `json:"api_url"`
	RequireMention  *bool    `json:"require_mention"`
	ReplyInThread   *bool    `json:"reply_in_thread"`
	AllowedUsers    []string `json:"allowed_users"`
	AllowedChannels []string `json:"allowed_channels"`
	RespondToBots   *bool    `json:"respond_to_bots"`
}

// parseSettings decodes and validates cfg. Every problem is a
// *shared.FatalError: a config that is wrong now stays wrong on restart.
func parseSettings(cfg shared.Config) (settings, error) {
	var raw rawConfig
	if err := cfg.Decode(&raw); err != nil {
		return settings{}, invalidConfig(err.Error(), "")
	}
	s := settings{
		botToken:      strings.TrimSpace(raw.BotToken),
		appToken:      strings.TrimSpace(raw.AppToken),
		replyInThread: boolOr(raw.ReplyInThread, true),
		access: kit.Access{
			Users:          kit.NewIDSet(raw.AllowedUsers),
			Chats:          kit.NewIDSet(raw.AllowedChannels),
			RequireMention: boolOr(raw.RequireMention, true),
			AllowBots:      boolOr(raw.RespondToBots, false),
		},
	}
	if err := checkToken(s.botToken, botToken); err != nil {
		return settings{}, err
	}
	if err := checkToken(s.appToken, appToken); err != nil {
		return settings{}, err
	}
	u, err := kit.ParseURL("api_url", raw.APIURL, DefaultAPIURL)
	if err != nil {
		return settings{}, err
	}
	s.apiURL = u.String() + "/"
	return s, nil
}

// checkToken rejects an empty token or one of the wrong kind before any
// request is made: the two are easy to swap, and Slack's answer to a
// swapped token (not_allowed_token_type) says less than this does.
func checkToken(tok string, kind tokenKind) error {
	if tok == "" {
		return invalidConfig(kind.attr+" is empty", "set "+kind.attr+" to the "+kind.what+", e.g. "+
			kind.attr+" = env(\""+kind.env+"\"): "+kind.where)
	}
	if !strings.HasPrefix(tok, kind.prefix) {
		return invalidConfig(fmt.Sprintf("%s does not start with %q", kind.attr, kind.prefix),
			"check "+kind.env+": "+kind.attr+" must be the "+kind.what+" ("+kind.where+")")
	}
	return nil
}

func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}
