package adapter

import (
	"strings"
	"sync"

	"github.com/bwmarrin/discordgo"

	"github.com/plughost/gateway/shared"
)

// inbound turns MESSAGE_CREATE into a host message, or nil when the bot
// should not answer it. The order matters: self and bots first (a bot
// answering bots loops), then allowlists, then mention gating, which also
// strips the mention from the text.
func inbound(s settings, botID string, threads *threadSet, m *discordgo.Message) *shared.Message {
	if m == nil || m.Author == nil || m.Author.ID == botID {
		return nil
	}
	if (m.Author.Bot || m.WebhookID != "") && !s.respondToBots {
		return nil
	}
	if m.Type != discordgo.MessageTypeDefault && m.Type != discordgo.MessageTypeReply {
		return nil // joins, pins, thread notices: nothing was said
	}
	direct := m.GuildID == ""
	parent := threads.parent(m.ChannelID)
	if !allowed(s, m, direct, parent) {
		return nil
	}
	if !direct && s.requireMention && !mentionsBot(m, botID) {
		return nil
	}
	text := strings.TrimSpace(stripMention(m.Content, botID))
	if text == "" {
		return nil
	}
	out := &shared.Message{
		ID:             m.ID,
		ConversationID: m.ChannelID,
		UserID:         m.Author.ID,
		UserName:       displayName(m),
		GuildID:        m.GuildID,
		Direct:         direct,
		Text:           text,
		UnixNano:       m.Timestamp.UnixNano(),
	}
	if parent != "" {
		// A thread is its own conversation: Discord gives it its own
		// channel id, which is what replies are posted to.
		out.ThreadID = m.ChannelID
	}
	return out
}

// allowed applies the allowlists. A DM has no guild or channel to check, so
// when guilds or channels are restricted a DM passes only if allowed_users
// names its sender (checked for every message) or its channel is listed:
// restricting the bot to a server must not leave it open to any DM.
func allowed(s settings, m *discordgo.Message, direct bool, parent string) bool {
	if !s.allowedUsers.allows(m.Author.ID) {
		return false
	}
	if direct {
		restricted := len(s.allowedGuilds) > 0 || len(s.allowedChannels) > 0
		return !restricted || len(s.allowedUsers) > 0 || s.allowedChannels.has(m.ChannelID)
	}
	if !s.allowedGuilds.allows(m.GuildID) {
		return false
	}
	return s.allowedChannels.allows(m.ChannelID) || (parent != "" && s.allowedChannels.has(parent))
}

// mentionsBot reports whether m addresses the bot: an @mention, or a reply
// to one of the bot's messages (with or without the reply ping).
func mentionsBot(m *discordgo.Message, botID string) bool {
	for _, u := range m.Mentions {
		if u != nil && u.ID == botID {
			return true
		}
	}
	if strings.Contains(m.Content, "<@"+botID+">") || strings.Contains(m.Content, "<@!"+botID+">") {
		return true
	}
	ref := m.ReferencedMessage
	return ref != nil && ref.Author != nil && ref.Author.ID == botID
}

// stripMention removes the bot's mentions so the agent sees what was said
// and commands like "@bot /new" work.
func stripMention(text, botID string) string {
	text = strings.ReplaceAll(text, "<@"+botID+">", "")
	return strings.ReplaceAll(text, "<@!"+botID+">", "")
}

// displayName is the name people see: server nickname, then global
// display name, then username.
func displayName(m *discordgo.Message) string {
	if m.Member != nil && m.Member.Nick != "" {
		return m.Member.Nick
	}
	return m.Author.DisplayName()
}

// threadSet remembers which channel ids are threads and their parents, from
// GUILD_CREATE, THREAD_CREATE/UPDATE/DELETE and THREAD_LIST_SYNC: a
// MESSAGE_CREATE alone does not say whether its channel is a thread.
type threadSet struct {
	mu      sync.Mutex
	parents map[string]string // thread id → parent channel id
}

func (t *threadSet) parent(id string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.parents[id]
}

func (t *threadSet) add(chs ...*discordgo.Channel) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.parents == nil {
		t.parents = map[string]string{}
	}
	for _, ch := range chs {
		if ch != nil && ch.IsThread() && ch.ParentID != "" {
			t.parents[ch.ID] = ch.ParentID
		}
	}
}

func (t *threadSet) remove(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.parents, id)
}
