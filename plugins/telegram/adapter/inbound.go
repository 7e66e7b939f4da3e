package adapter

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/go-telegram/bot/models"

	"github.com/plughost/gateway/shared"
)

// inbound turns a Telegram message into a host message, or nil when the bot
// should not answer it. The order matters: bots first (a bot answering bots
// loops), then allowlists, then addressing in groups, which also strips the
// bot's @mention and a command's @botname from the text.
func inbound(s settings, me *models.User, m *models.Message) *shared.Message {
	if m == nil || m.From == nil || m.From.IsBot || me == nil {
		return nil
	}
	text, entities := m.Text, m.Entities
	if text == "" {
		text, entities = m.Caption, m.CaptionEntities // a photo or file with a caption
	}
	direct := m.Chat.Type == models.ChatTypePrivate
	switch m.Chat.Type {
	case models.ChatTypePrivate, models.ChatTypeGroup, models.ChatTypeSupergroup:
	default:
		return nil // channels: nobody to answer
	}
	if !allowed(s, m.From.ID, m.Chat.ID, direct) {
		return nil
	}
	text, addressed, ok := address(text, entities, me.Username, me.ID)
	if !ok {
		return nil // a command for another bot
	}
	if !direct && s.requireMention && !addressed && !repliesToBot(m, me.ID) {
		return nil
	}
	text = strings.TrimSpace(text)
	if text == "" {
		return nil
	}
	out := &shared.Message{
		ID:             messageID(m.Chat.ID, m.ID),
		ConversationID: strconv.FormatInt(m.Chat.ID, 10),
		UserID:         strconv.FormatInt(m.From.ID, 10),
		UserName:       displayName(m.From),
		Direct:         direct,
		Text:           text,
		UnixNano:       int64(m.Date) * 1e9,
	}
	if m.IsTopicMessage && m.MessageThreadID != 0 {
		// A forum topic is its own conversation; replies go to it. (A reply
		// chain in a group without topics also carries a thread id, but is
		// not a topic.)
		out.ThreadID = strconv.Itoa(m.MessageThreadID)
	}
	return out
}

// messageID is the host's id for a Telegram message: message ids are only
// unique within their chat.
func messageID(chat int64, id int) string {
	return strconv.FormatInt(chat, 10) + ":" + strconv.Itoa(id)
}

// parseMessageID reverses messageID.
func parseMessageID(s string) (chat int64, id int, ok bool) {
	c, m, found := strings.Cut(s, ":")
	if !found {
		return 0, 0, false
	}
	chat, err1 := strconv.ParseInt(c, 10, 64)
	id, err2 := strconv.Atoi(m)
	return chat, id, err1 == nil && err2 == nil
}

// allowed applies the allowlists. A private chat's id is its user's id, so
// when chats are restricted a private chat passes if allowed_chats lists it
// or allowed_users names its user: restricting the bot to a group must not
// leave it open to anyone in private.
func allowed(s settings, user, chat int64, direct bool) bool {
	if !s.allowedUsers.allows(user) {
		return false
	}
	if direct {
		return len(s.allowedChats) == 0 || len(s.allowedUsers) > 0 || s.allowedChats.has(chat)
	}
	return s.allowedChats.allows(chat)
}

// address finds whether text addresses the bot (an @mention of it, or a
// /command, which Telegram delivers to bots even in privacy mode) and
// returns the text the agent should see: the mention removed and
// "/cmd@botname" written "/cmd". ok is false for "/cmd@otherbot".
// Entity offsets and lengths count UTF-16 code units.
func address(text string, entities []models.MessageEntity, username string, botID int64) (out string, addressed, ok bool) {
	units := utf16.Encode([]rune(text))
	type edit struct{ off, n int }
	var cuts []edit
	for _, e := range entities {
		if e.Offset < 0 || e.Length <= 0 || e.Offset+e.Length > len(units) {
			continue
		}
		word := string(utf16.Decode(units[e.Offset : e.Offset+e.Length]))
		switch e.Type {
		case models.MessageEntityTypeMention:
			if strings.EqualFold(word, "@"+username) {
				addressed = true
				cuts = append(cuts, edit{e.Offset, e.Length})
			}
		case models.MessageEntityTypeTextMention:
			if e.User != nil && e.User.ID == botID {
				addressed = true
			}
		case models.MessageEntityTypeBotCommand:
			if e.Offset != 0 {
				continue // only a leading command is one
			}
			cmd, target, named := strings.Cut(word, "@")
			switch {
			case !named:
				addressed = true
			case strings.EqualFold(target, username):
				addressed = true
				cut := len(utf16.Encode([]rune(cmd)))
				cuts = append(cuts, edit{cut, e.Length - cut})
			default:
				return "", false, false
			}
		}
	}
	if len(cuts) == 0 {
		return text, addressed, true
	}
	slices.SortFunc(cuts, func(a, b edit) int { return b.off - a.off })
	for _, c := range cuts {
		units = slices.Delete(units, c.off, c.off+c.n)
	}
	return string(utf16.Decode(units)), addressed, true
}

// repliesToBot reports whether m answers one of the bot's messages. In a
// forum topic every message replies to the topic's creation message, which
// does not count.
func repliesToBot(m *models.Message, botID int64) bool {
	r := m.ReplyToMessage
	return r != nil && r.ForumTopicCreated == nil && r.From != nil && r.From.ID == botID
}

// displayName is the name people see: first and last name, else username.
func displayName(u *models.User) string {
	name := strings.TrimSpace(u.FirstName + " " + u.LastName)
	if name == "" {
		return u.Username
	}
	return name
}
