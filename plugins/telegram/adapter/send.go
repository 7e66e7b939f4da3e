package adapter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// maxMessageLength is Telegram's limit on a message's text, in UTF-16 code
// units (the unit Telegram counts entities in).
const maxMessageLength = 4096

// Send posts a reply in the chat (and forum topic) it answers, split into
// parts of at most 4,096 UTF-16 units; the first part replies to the user's
// message. It returns the ids of the posted messages. Sends go through the
// chat's budget, which waits out a 429's retry_after for that chat only.
func (a *Adapter) Send(ctx context.Context, r shared.Reply) ([]string, error) {
	_, client, err := a.client()
	if err != nil {
		return nil, err
	}
	chat, thread, err := target(r.ConversationID, r.ThreadID)
	if err != nil {
		return nil, fmt.Errorf("telegram send: %w", err)
	}
	replyTo := 0
	if c, id, ok := parseMessageID(r.ReplyToID); ok && c == chat {
		replyTo = id
	}
	parts := kit.Chunk(r.Text, maxMessageLength, kit.UTF16)
	ids := make([]string, 0, len(parts))
	for i, part := range parts {
		params := &bot.SendMessageParams{ChatID: chat, MessageThreadID: thread, Text: part}
		if i == 0 && replyTo != 0 {
			// The user may have deleted their message: post anyway.
			params.ReplyParameters = &models.ReplyParameters{MessageID: replyTo, AllowSendingWithoutReply: true}
		}
		m, err := a.sendMessage(ctx, client, r.ConversationID, params)
		if err != nil {
			return ids, fmt.Errorf("posting part %d/%d of a reply in chat %d: %w", i+1, len(parts), chat, err)
		}
		ids = append(ids, messageID(m.Chat.ID, m.ID))
	}
	return ids, nil
}

// sendMessage posts one message within conv's budget. A rejected token ends
// the plugin; a group that became a supergroup is posted to at its new id.
func (a *Adapter) sendMessage(ctx context.Context, client *api, conv string, params *bot.SendMessageParams) (*models.Message, error) {
	var sent *models.Message
	var last error
	migrated := false
	err := a.budget.Do(ctx, conv, kit.Final, func(ctx context.Context) error {
		m, err := call(ctx, func(ctx context.Context) (*models.Message, error) { return client.bot.SendMessage(ctx, params) })
		var migrate *bot.MigrateError
		if errors.As(err, &migrate) && !migrated {
			migrated = true
			a.log.Info("the group became a supergroup; posting to its new id", "chat", fmt.Sprint(params.ChatID), "new_chat", fmt.Sprint(migrate.MigrateToChatID))
			params.ChatID = int64(migrate.MigrateToChatID)
			m, err = call(ctx, func(ctx context.Context) (*models.Message, error) { return client.bot.SendMessage(ctx, params) })
		}
		sent, last = m, a.classify("sendMessage", params.ChatID, err)
		return last
	})
	var limited *kit.RetryAfterError
	switch {
	case err == nil:
		return sent, nil
	case ctx.Err() != nil && errors.As(last, &limited):
		// Waiting out a retry_after ran past the reply's deadline: say why.
		return nil, fmt.Errorf("Telegram asked the bot to wait %s before posting in this chat (429), longer than the reply may take: %w",
			limited.After, err)
	}
	return nil, err
}

// classify turns a call's error into what the budget and the host need: a
// rejected token ends the plugin (the fatal error), a 429 becomes a
// *kit.RetryAfterError for the budget, anything else is wrapped as is.
func (a *Adapter) classify(method string, chat any, err error) error {
	switch {
	case err == nil:
		return nil
	case isTokenRejected(err):
		return a.reject(fmt.Errorf("%s: %w", method, err))
	case status(err) == http.StatusTooManyRequests:
		after := time.Duration(max(retryAfter(err), 1)) * time.Second
		a.log.Warn("Telegram rate-limited the chat; waiting", "method", method, "chat", fmt.Sprint(chat), "retry_after", after.String())
		return &kit.RetryAfterError{After: after, Err: fmt.Errorf("%s: %w", method, err)}
	}
	return fmt.Errorf("%s: %w", method, err)
}

// Typing shows "typing…" in the chat (and topic) for about five seconds, or
// until the bot posts. It is skipped when the chat's budget has no room
// (a 429 being waited out, a reply being sent).
func (a *Adapter) Typing(ctx context.Context, conv shared.Conversation) error {
	_, client, err := a.client()
	if err != nil {
		return err
	}
	chat, thread, err := target(conv.ConversationID, conv.ThreadID)
	if err != nil {
		return fmt.Errorf("telegram typing: %w", err)
	}
	err = a.budget.Do(ctx, conv.ConversationID, kit.Interim, func(ctx context.Context) error {
		_, err := call(ctx, func(ctx context.Context) (bool, error) {
			return client.bot.SendChatAction(ctx, &bot.SendChatActionParams{ChatID: chat, MessageThreadID: thread, Action: models.ChatActionTyping})
		})
		return a.classify("sendChatAction", chat, err)
	})
	if errors.Is(err, kit.ErrSkipped) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("typing in chat %d: %w", chat, err)
	}
	return nil
}

// target parses a conversation's chat id and forum topic.
func target(conversation, thread string) (chat int64, topic int, err error) {
	chat, err = strconv.ParseInt(conversation, 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("conversation id %q is not a Telegram chat id", conversation)
	}
	if thread != "" {
		if topic, err = strconv.Atoi(thread); err != nil {
			return 0, 0, fmt.Errorf("thread id %q is not a Telegram topic id", thread)
		}
	}
	return chat, topic, nil
}
