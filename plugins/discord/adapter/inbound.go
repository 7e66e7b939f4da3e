package adapter

import (
	"strings"
	"sync"

	"github.com/bwmarrin/discordgo"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// inbound turns MESSAGE_CREATE into a host message, or nil when the bot
// should not answer it: the access policy (kit.Access) decides, and the
// bot's mention is stripped from the text.
func inbound(s settings, botID string, threads *threadSet, m *discordgo.Message) *shared.Message {
	if m == nil || m.Author == nil {
		return nil
	}
	if m.Type != discordgo.MessageTypeDefault && m.Type != discordgo.MessageTypeReply {
		return nil // joins, pins, thread notices: nothing was said
	}
	direct := m.GuildID == ""
	parent := threads.parent(m.ChannelID)
	denied := s.access.Check(kit.Inbound{
		UserID:       m.Author.ID,
		ChatID:       m.ChannelID,
		GuildID:      m.GuildID,
		ParentChatID: parent,
		Direct:       direct,
		Self:         m.Author.ID == botID,
		FromBot:      m.Author.Bot || m.WebhookID != "",
		Mentioned:    mentionsBot(m, botID),
	})
	if denied != "" {
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
		// stream_replies: the reply is shown as it is written.
		Stream: s.streamReplies,
	}
	if parent != "" {
		// A thread is its own conversation: Discord gives it its own
		// channel id, which is what replies are posted to.
		out.ThreadID = m.ChannelID
	}
	return out
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
