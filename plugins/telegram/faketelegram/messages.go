package faketelegram

import (
	"regexp"
	"strconv"
	"unicode/utf16"

	"github.com/go-telegram/bot/models"
)

// Private returns a text message from user in their private chat with the
// bot (whose chat id is the user's id, as on Telegram).
func Private(user int64, text string) *models.Message {
	return &models.Message{
		From: &models.User{ID: user, FirstName: "User", Username: "user" + itoa(user)},
		Chat: models.Chat{ID: user, Type: models.ChatTypePrivate, FirstName: "User"},
		Text: text,
	}
}

// Group returns a text message from user in the supergroup chat (a negative
// id, as on Telegram).
func Group(chat, user int64, text string) *models.Message {
	return &models.Message{
		From: &models.User{ID: user, FirstName: "User", Username: "user" + itoa(user)},
		Chat: models.Chat{ID: chat, Type: models.ChatTypeSupergroup, Title: "Group"},
		Text: text,
	}
}

// Topic returns a text message from user in forum topic thread of the forum
// supergroup chat. Like Telegram, it carries message_thread_id,
// is_topic_message and, as reply_to_message, the topic's creation message.
func Topic(chat int64, thread int, user int64, text string) *models.Message {
	m := Group(chat, user, text)
	m.Chat.IsForum = true
	m.MessageThreadID = thread
	m.IsTopicMessage = true
	m.ReplyToMessage = &models.Message{
		ID: thread, MessageThreadID: thread, Chat: m.Chat, IsTopicMessage: true,
		From:              &models.User{ID: user, FirstName: "User"},
		ForumTopicCreated: &models.ForumTopicCreated{Name: "topic", IconColor: 7322096},
	}
	return m
}

// Mention is text addressed to the bot with an @mention in front.
func Mention(text string) string { return "@" + BotUsername + " " + text }

// ReplyTo makes m a reply to the bot's posted message p.
func ReplyTo(m *models.Message, p Posted) *models.Message {
	m.ReplyToMessage = &models.Message{
		ID: p.MessageID, Chat: m.Chat, Text: p.Text, MessageThreadID: p.ThreadID,
		From: &models.User{ID: BotID, IsBot: true, FirstName: "Gateway Test", Username: BotUsername},
	}
	return m
}

// entityPattern finds what Telegram marks up in plain text: @usernames
// anywhere and a /command (with an optional @bot) at the start.
var entityPattern = regexp.MustCompile(`(^/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?)|(@[A-Za-z0-9_]{5,32})`)

// entities returns the message entities Telegram would give text, with
// offsets and lengths in UTF-16 code units.
func entities(text string) []models.MessageEntity {
	var out []models.MessageEntity
	for _, loc := range entityPattern.FindAllStringSubmatchIndex(text, -1) {
		typ := models.MessageEntityTypeMention
		if loc[2] >= 0 {
			typ = models.MessageEntityTypeBotCommand
		}
		out = append(out, models.MessageEntity{
			Type:   typ,
			Offset: utf16Len(text[:loc[0]]),
			Length: utf16Len(text[loc[0]:loc[1]]),
		})
	}
	return out
}

func utf16Len(s string) int { return len(utf16.Encode([]rune(s))) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
