package adapter

import (
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// DefaultAPIURL is Discord's REST API base, v10.
const DefaultAPIURL = "https://discord.com/api/v10"

// schema is the plugin's config block, as the host validates it.
var schema = []shared.Attribute{
	{Name: "token", Type: shared.TypeString, Required: true, Sensitive: true,
		Description: "Bot token from the Discord Developer Portal (Bot → Token); a \"Bot \" prefix is optional."},
	{Name: "api_url", Type: shared.TypeString, Default: DefaultAPIURL,
		Description: "REST API base URL; the gateway websocket URL is taken from its /gateway/bot answer."},
	{Name: "require_mention", Type: shared.TypeBool, Default: true,
		Description: "In guild channels, answer only messages that mention the bot; direct messages are always answered."},
	{Name: "allowed_users", Type: shared.TypeListOfString, Default: []string{},
		Description: "User ids allowed to talk to the bot; empty allows everyone."},
	{Name: "allowed_channels", Type: shared.TypeListOfString, Default: []string{},
		Description: "Channel ids the bot answers in (threads follow their parent channel); empty allows all."},
	{Name: "allowed_guilds", Type: shared.TypeListOfString, Default: []string{},
		Description: "Guild (server) ids the bot answers in; empty allows all."},
	{Name: "respond_to_bots", Type: shared.TypeBool, Default: false,
		Description: "Answer messages written by other bots."},
	{Name: "typing", Type: shared.TypeBool, Default: true,
		Description: "Show the typing indicator while the agent works."},
	{Name: "reply_to_message", Type: shared.TypeBool, Default: true,
		Description: "Post the first chunk of an answer as a reply to the user's message."},
	{Name: "stream_replies", Type: shared.TypeBool, Default: false,
		Description: "Post the reply as soon as it starts and edit it in place as it grows (within the channel's rate budget); false posts only the finished reply."},
	{Name: "edit_interval", Type: shared.TypeDuration, Default: "1s",
		Description: "Least time between two edits of a streaming reply; interim edits over the channel's budget are skipped, the final text never is."},
	{Name: "identify_budget", Type: shared.TypeNumber, Default: 20,
		Description: "Most gateway identifies per hour before the plugin gives up for good; Discord resets tokens that identify too often."},
}

// settings is the decoded, validated config block.
type settings struct {
	token          string // without the "Bot " prefix
	apiURL         *url.URL
	access         kit.Access
	typing         bool
	replyToMessage bool
	identifyBudget int
	// shard of shardCount: the host's platform shards (1 when unsharded).
	shard, shardCount int
	streamReplies     bool
	editInterval      time.Duration
}

// rawConfig mirrors the JSON the host sends; pointers tell unset from false.
type rawConfig struct {
	Token           string   `json:"token"`
	APIURL          string   `json:"api_url"`
	RequireMention  *bool    `json:"require_mention"`
	AllowedUsers    []string `json:"allowed_users"`
	AllowedChannels []string `json:"allowed_channels"`
	AllowedGuilds   []string `json:"allowed_guilds"`
	RespondToBots   *bool    `json:"respond_to_bots"`
	Typing          *bool    `json:"typing"`
	ReplyToMessage  *bool    `json:"reply_to_message"`
	IdentifyBudget  *float64 `json:"identify_budget"`
	StreamReplies   *bool    `json:"stream_replies"`
	EditInterval    string   `json:"edit_interval"`
}

// parseSettings decodes and validates cfg. Every problem is a
// *shared.FatalError: a config that is wrong now stays wrong on restart.
func parseSettings(cfg shared.Config) (settings, error) {
	var raw rawConfig
	if err := cfg.Decode(&raw); err != nil {
		return settings{}, kit.InvalidConfig(err.Error(), "")
	}
	s := settings{
		access: kit.Access{
			Users:          kit.NewIDSet(raw.AllowedUsers),
			Chats:          kit.NewIDSet(raw.AllowedChannels),
			Guilds:         kit.NewIDSet(raw.AllowedGuilds),
			RequireMention: boolOr(raw.RequireMention, true),
			AllowBots:      boolOr(raw.RespondToBots, false),
		},
		typing:         boolOr(raw.Typing, true),
		replyToMessage: boolOr(raw.ReplyToMessage, true),
		identifyBudget: 20,
		streamReplies:  boolOr(raw.StreamReplies, false),
	}
	s.shard, s.shardCount = cfg.Sharded()
	interval, err := kit.ParseDuration("edit_interval", raw.EditInterval, defaultEditInterval)
	if err != nil {
		return settings{}, err
	}
	s.editInterval = interval
	s.token = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(raw.Token), "Bot "))
	if s.token == "" {
		return settings{}, kit.InvalidConfig("token is empty",
			"set token to the bot token from the Discord Developer Portal (Bot → Reset Token), e.g. token = env(\"DISCORD_TOKEN\")")
	}
	u, err := kit.ParseURL("api_url", raw.APIURL, DefaultAPIURL)
	if err != nil {
		return settings{}, err
	}
	s.apiURL = u
	if raw.IdentifyBudget != nil {
		b := *raw.IdentifyBudget
		if b < 1 || b != math.Trunc(b) || b > 1000 {
			return settings{}, kit.InvalidConfig(fmt.Sprintf("identify_budget %v is not a whole number between 1 and 1000", b),
				"leave it unset for the default of 20 per hour")
		}
		s.identifyBudget = int(b)
	}
	return s, nil
}

// gatewayVersion is the API version in api_url's path ("/api/v10" → "10"),
// used for the gateway's ?v= parameter; 10 when the path names none.
func (s settings) gatewayVersion() string {
	for _, part := range strings.Split(s.apiURL.Path, "/") {
		if len(part) > 1 && part[0] == 'v' && strings.Trim(part[1:], "0123456789") == "" {
			return part[1:]
		}
	}
	return "10"
}

func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}
