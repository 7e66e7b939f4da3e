package adapter

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// DefaultAPIURL is the Bot API server; requests go to
// {api_url}/bot{token}/{method}.
const DefaultAPIURL = "https://api.telegram.org"

// Limits on poll_timeout: Telegram takes whole seconds and holds a long poll
// for at most 50 of them.
const (
	minPollTimeout = time.Second
	maxPollTimeout = 50 * time.Second
)

// schema is the plugin's config block, as the host validates it.
var schema = []shared.Attribute{
	{Name: "token", Type: shared.TypeString, Required: true, Sensitive: true,
		Description: "Bot token from @BotFather (/newbot or /mybots → API Token), e.g. token = env(\"TELEGRAM_TOKEN\")."},
	{Name: "api_url", Type: shared.TypeString, Default: DefaultAPIURL,
		Description: "Bot API server; requests go to {api_url}/bot{token}/{method}. Set it for a self-hosted Bot API server or a test server."},
	{Name: "require_mention", Type: shared.TypeBool, Default: true,
		Description: "In groups and supergroups, answer only @mentions of the bot, replies to its messages and /commands; private chats are always answered."},
	{Name: "allowed_users", Type: shared.TypeListOfString, Default: []string{},
		Description: "Telegram user ids (numbers, as strings) allowed to talk to the bot; empty allows everyone."},
	{Name: "allowed_chats", Type: shared.TypeListOfString, Default: []string{},
		Description: "Chat ids (as strings; groups are negative, supergroups start with -100) the bot answers in; empty allows all."},
	{Name: "poll_timeout", Type: shared.TypeDuration, Default: "30s",
		Description: "How long one getUpdates long poll waits for a message (whole seconds, 1s to 50s)."},
	{Name: "delete_webhook", Type: shared.TypeBool, Default: false,
		Description: "When a webhook is set for the bot (getUpdates answers 409), delete it and poll. Off by default: the webhook may belong to another deployment."},
}

// settings is the decoded, validated config block.
type settings struct {
	token         string
	apiURL        string // without a trailing slash
	access        kit.Access
	pollTimeout   time.Duration
	deleteWebhook bool
}

// rawConfig mirrors the JSON the host sends; pointers tell unset from false.
type rawConfig struct {
	Token          string   `json:"token"`
	APIURL         string   `json:"api_url"`
	RequireMention *bool    `json:"require_mention"`
	AllowedUsers   []string `json:"allowed_users"`
	AllowedChats   []string `json:"allowed_chats"`
	PollTimeout    string   `json:"poll_timeout"`
	DeleteWebhook  *bool    `json:"delete_webhook"`
}

// parseSettings decodes and validates cfg. Every problem is a
// *shared.FatalError: a config that is wrong now stays wrong on restart.
func parseSettings(cfg shared.Config) (settings, error) {
	var raw rawConfig
	if err := cfg.Decode(&raw); err != nil {
		return settings{}, kit.InvalidConfig(err.Error(), "")
	}
	s := settings{
		token: strings.TrimSpace(raw.Token),
		access: kit.Access{
			Users:          kit.NewIDSet(raw.AllowedUsers),
			Chats:          kit.NewIDSet(raw.AllowedChats),
			RequireMention: raw.RequireMention == nil || *raw.RequireMention,
		},
		deleteWebhook: raw.DeleteWebhook != nil && *raw.DeleteWebhook,
	}
	if s.token == "" {
		return settings{}, kit.InvalidConfig("token is empty",
			"set token to the bot token from @BotFather, e.g. token = env(\"TELEGRAM_TOKEN\")")
	}
	if strings.ContainsAny(s.token, "/?#% \t\r\n") {
		// It would change the request path; Telegram tokens never hold these.
		return settings{}, kit.InvalidConfig("token holds characters a Telegram bot token never has",
			"copy the token again from @BotFather (it looks like 123456789:AA…) into TELEGRAM_TOKEN")
	}
	u, err := kit.ParseURL("api_url", raw.APIURL, DefaultAPIURL)
	if err != nil {
		return settings{}, err
	}
	s.apiURL = u.String()
	if err := numericIDs("allowed_users", s.access.Users); err != nil {
		return settings{}, err
	}
	if err := numericIDs("allowed_chats", s.access.Chats); err != nil {
		return settings{}, err
	}
	if s.pollTimeout, err = kit.ParseDuration("poll_timeout", raw.PollTimeout, 30*time.Second); err != nil {
		return settings{}, err
	}
	if s.pollTimeout < minPollTimeout || s.pollTimeout > maxPollTimeout {
		return settings{}, kit.InvalidConfig(fmt.Sprintf("poll_timeout %q is not between 1s and 50s", raw.PollTimeout),
			"leave it unset for 30s")
	}
	s.pollTimeout = s.pollTimeout.Truncate(time.Second)
	return s, nil
}

// numericIDs refuses an id that is not a number, such as "@alice":
// Telegram messages carry ids, and usernames can change hands.
func numericIDs(attr string, ids kit.IDSet) error {
	for id := range ids {
		if _, err := strconv.ParseInt(id, 10, 64); err != nil {
			return kit.InvalidConfig(fmt.Sprintf("%s holds %q, which is not a numeric Telegram id", attr, id),
				"use numeric ids (a user id like \"123456789\", a group id like \"-1001234567890\"); the plugin's README says how to find them")
		}
	}
	return nil
}
