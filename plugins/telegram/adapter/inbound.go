package adapter

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/go-telegram/bot/models"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// inbound turns a Telegram message into a host message, or returns nil and
// why the bot does not answer it. The access policy (kit.Access) decides
// who and where; addressing in groups (an @mention, a reply to the bot, a
// command) is found here, which also strips the bot's @mention and a
// command's @botname from the text.
func inbound(s settings, me *models.User, m *models.Message) (*shared.Message, string) {
	if m == nil || m.From == nil || me == nil {
		return nil, "not a message from a user"
	}
	switch m.Chat.Type {
	case models.ChatTypePrivate, models.ChatTypeGroup, models.ChatTypeSupergroup:
	default:
		return nil, "a channel post" // nobody to answer
	}
	text, entities := m.Text, m.Entities
	if text == "" {
		text, entities = m.Caption, m.CaptionEntities // a photo or file with a caption
	}
	text, mentioned, command, forUs := address(text, entities, me.Username, me.ID)
	if !forUs {
		return nil, "a command for another bot"
	}
	direct := m.Chat.Type == models.ChatTypePrivate
	if denial := s.access.Check(kit.Inbound{
		UserID:    strconv.FormatInt(m.From.ID, 10),
		ChatID:    strconv.FormatInt(m.Chat.ID, 10),
		Direct:    direct,
		Self:      m.From.ID == me.ID,
		FromBot:   m.From.IsBot,
		Mentioned: mentioned || repliesToBot(m, me.ID),
		Command:   command,
	}); denial != "" {
		return nil, string(denial)
	}
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, "no text"
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
	return out, ""
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

// address finds whether text mentions the bot or is a /command (which
// Telegram delivers to bots even in privacy mode) and returns the text the
// agent should see: the mention removed and "/cmd@botname" written "/cmd".
// forUs is false for "/cmd@otherbot". Entity offsets and lengths count
// UTF-16 code units.
func address(text string, entities []models.MessageEntity, username string, botID int64) (out string, mentioned, command, forUs bool) {
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
				mentioned = true
				cuts = append(cuts, edit{e.Offset, e.Length})
			}
		case models.MessageEntityTypeTextMention:
			if e.User != nil && e.User.ID == botID {
				mentioned = true
			}
		case models.MessageEntityTypeBotCommand:
			if e.Offset != 0 {
				continue // only a leading command is one
			}
			cmd, target, named := strings.Cut(word, "@")
			switch {
			case !named:
				command = true
			case strings.EqualFold(target, username):
				command = true
				cut := len(utf16.Encode([]rune(cmd)))
				cuts = append(cuts, edit{cut, e.Length - cut})
			default:
				return "", false, false, false
			}
		}
	}
	if len(cuts) == 0 {
		return text, mentioned, command, true
	}
	slices.SortFunc(cuts, func(a, b edit) int { return b.off - a.off })
	for _, c := range cuts {
		units = slices.Delete(units, c.off, c.off+c.n)
	}
	return string(utf16.Decode(units)), mentioned, command, true
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
