package kit

import "strings"

// IDSet is a set of platform ids (users, chats, guilds). An empty set is an
// allowlist that allows everyone.
type IDSet map[string]struct{}

// NewIDSet returns the set of ids, trimmed, blanks dropped.
func NewIDSet(ids []string) IDSet {
	s := IDSet{}
	for _, id := range ids {
		if id = strings.TrimSpace(id); id != "" {
			s[id] = struct{}{}
		}
	}
	return s
}

// Has reports whether id is in the set.
func (s IDSet) Has(id string) bool {
	_, ok := s[id]
	return ok
}

// Allows reports whether id passes the set as an allowlist: an empty set
// allows every id.
func (s IDSet) Allows(id string) bool { return len(s) == 0 || s.Has(id) }

// Access is a platform's access policy, with the same meaning on every
// platform. Config attributes map onto it: allowed_users → Users,
// allowed_chats or allowed_channels → Chats, allowed_guilds (servers,
// workspaces) → Guilds, require_mention → RequireMention, respond_to_bots →
// AllowBots.
type Access struct {
	// Users, Chats and Guilds are allowlists; empty allows all. A thread is
	// allowed when its parent chat is.
	Users, Chats, Guilds IDSet
	// RequireMention makes the bot answer in group chats only what is
	// addressed to it: a mention, a reply to one of its messages, or a
	// command. Direct messages are always addressed to it.
	RequireMention bool
	// AllowBots lets the bot answer other bots (never itself).
	AllowBots bool
}

// Inbound is what the access policy needs to know about a message; the
// plugin fills it from its platform's event.
type Inbound struct {
	UserID  string
	ChatID  string
	GuildID string // server or workspace; empty when the platform has none
	// ParentChatID is the chat a thread belongs to, for a message in a
	// thread with its own id; empty otherwise.
	ParentChatID string
	// Direct is a one-to-one chat with the bot.
	Direct bool
	// Self is a message the bot wrote; FromBot one another bot (or a
	// webhook) wrote.
	Self, FromBot bool
	// Mentioned is a message that mentions the bot, or replies to one of
	// its messages.
	Mentioned bool
	// Command is a chat command addressed to the bot ("/new", or
	// "/new@botname" where the platform names the bot in commands).
	Command bool
}

// Denial says why the policy refuses a message; the empty Denial allows it.
type Denial string

// The reasons Access.Check refuses a message, for debug logs.
const (
	DeniedSelf         Denial = "written by the bot itself"
	DeniedBot          Denial = "written by a bot (respond_to_bots is off)"
	DeniedUser         Denial = "user not in the allowed users"
	DeniedChat         Denial = "chat not in the allowed chats"
	DeniedGuild        Denial = "server not in the allowed servers"
	DeniedDirect       Denial = "direct message while access is limited to some chats or servers"
	DeniedNotAddressed Denial = "group message not addressed to the bot (no mention, reply or command)"
)

// Check applies the policy to m and returns why it is refused, or "" when
// the bot answers it. The order matters: the bot itself and other bots
// first (a bot answering bots loops), then the allowlists, then mention
// gating.
//
// A direct message has no chat or server to check, so while Chats or Guilds
// restrict the bot, a direct message passes only when Users is set (and
// names its sender) or its chat is listed: restricting the bot to a server
// must not leave it open to any direct message.
func (a Access) Check(m Inbound) Denial {
	switch {
	case m.Self:
		return DeniedSelf
	case m.FromBot && !a.AllowBots:
		return DeniedBot
	case !a.Users.Allows(m.UserID):
		return DeniedUser
	}
	if m.Direct {
		restricted := len(a.Guilds) > 0 || len(a.Chats) > 0
		if restricted && len(a.Users) == 0 && !a.Chats.Has(m.ChatID) {
			return DeniedDirect
		}
		return ""
	}
	if !a.Guilds.Allows(m.GuildID) {
		return DeniedGuild
	}
	if !a.Chats.Allows(m.ChatID) && (m.ParentChatID == "" || !a.Chats.Has(m.ParentChatID)) {
		return DeniedChat
	}
	if a.RequireMention && !m.Mentioned && !m.Command {
		return DeniedNotAddressed
	}
	return ""
}
