package adapter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"

	"github.com/plughost/gateway/shared"
)

// maxMessageLength is Telegram's limit on a message's text, in UTF-16 code
// units (the unit Telegram counts entities in).
const maxMessageLength = 4096

// maxRateLimitWaits bounds how many 429s one message part waits out.
const maxRateLimitWaits = 3

// Send posts a reply in the chat (and forum topic) it answers, split into
// parts of at most 4,096 UTF-16 units; the first part replies to the user's
// message. It returns the ids of the posted messages. A 429 makes it wait
// the retry_after Telegram gave for that chat; other chats are not held up.
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
	parts := splitMessage(r.Text, maxMessageLength)
	ids := make([]string, 0, len(parts))
	for i, part := range parts {
		params := &bot.SendMessageParams{ChatID: chat, MessageThreadID: thread, Text: part}
		if i == 0 && replyTo != 0 {
			// The user may have deleted their message: post anyway.
			params.ReplyParameters = &models.ReplyParameters{MessageID: replyTo, AllowSendingWithoutReply: true}
		}
		m, err := a.sendMessage(ctx, client, params)
		if err != nil {
			return ids, fmt.Errorf("posting part %d/%d of a reply in chat %d: %w", i+1, len(parts), chat, err)
		}
		chat = m.Chat.ID // a group that became a supergroup has a new id
		ids = append(ids, messageID(m.Chat.ID, m.ID))
	}
	return ids, nil
}

// sendMessage posts one message, waiting out the chat's retry-after first
// and after a 429. A rejected token ends the plugin.
func (a *Adapter) sendMessage(ctx context.Context, client *api, params *bot.SendMessageParams) (*models.Message, error) {
	migrated := false
	for waits := 0; ; {
		chat := params.ChatID.(int64)
		if err := a.limits.wait(ctx, chat); err != nil {
			return nil, err
		}
		m, err := call(ctx, func(ctx context.Context) (*models.Message, error) { return client.bot.SendMessage(ctx, params) })
		var migrate *bot.MigrateError
		switch {
		case err == nil:
			return m, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case isTokenRejected(err):
			return nil, a.reject(fmt.Errorf("sendMessage: %w", err))
		case status(err) == http.StatusTooManyRequests && waits < maxRateLimitWaits:
			waits++
			a.limits.hold(chat, time.Duration(max(retryAfter(err), 1))*time.Second)
			a.log.Warn("Telegram rate-limited the chat; waiting", "chat", chat, "retry_after_s", retryAfter(err))
		case errors.As(err, &migrate) && !migrated:
			migrated = true
			a.log.Info("the group became a supergroup; posting to its new id", "chat", chat, "new_chat", migrate.MigrateToChatID)
			params.ChatID = int64(migrate.MigrateToChatID)
		default:
			return nil, fmt.Errorf("sendMessage: %w", err)
		}
	}
}

// Typing shows "typing…" in the chat (and topic) for about five seconds, or
// until the bot posts. It is skipped while the chat waits out a 429.
func (a *Adapter) Typing(ctx context.Context, conv shared.Conversation) error {
	_, client, err := a.client()
	if err != nil {
		return err
	}
	chat, thread, err := target(conv.ConversationID, conv.ThreadID)
	if err != nil {
		return fmt.Errorf("telegram typing: %w", err)
	}
	if a.limits.limited(chat) {
		return nil
	}
	_, err = call(ctx, func(ctx context.Context) (bool, error) {
		return client.bot.SendChatAction(ctx, &bot.SendChatActionParams{ChatID: chat, MessageThreadID: thread, Action: models.ChatActionTyping})
	})
	switch {
	case err == nil:
		return nil
	case isTokenRejected(err):
		return a.reject(fmt.Errorf("sendChatAction: %w", err))
	case status(err) == http.StatusTooManyRequests:
		a.limits.hold(chat, time.Duration(max(retryAfter(err), 1))*time.Second)
		return nil
	}
	return fmt.Errorf("typing in chat %d: sendChatAction: %w", chat, err)
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

// chatLimits remembers, per chat, until when Telegram asked the bot not to
// post there (429 retry_after).
type chatLimits struct {
	mu    sync.Mutex
	until map[int64]time.Time
}

// hold makes the chat wait d from now.
func (l *chatLimits) hold(chat int64, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.until == nil {
		l.until = map[int64]time.Time{}
	}
	now := time.Now()
	for c, t := range l.until { // keep the map small
		if !t.After(now) {
			delete(l.until, c)
		}
	}
	if t := now.Add(d); t.After(l.until[chat]) {
		l.until[chat] = t
	}
}

func (l *chatLimits) remaining(chat int64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Until(l.until[chat])
}

func (l *chatLimits) limited(chat int64) bool { return l.remaining(chat) > 0 }

// wait blocks until the chat may be posted to. When ctx would end first it
// returns at once, saying so, rather than sleep for nothing.
func (l *chatLimits) wait(ctx context.Context, chat int64) error {
	d := l.remaining(chat)
	if d <= 0 {
		return nil
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		return fmt.Errorf("telegram asked the bot to wait %s before posting in chat %d (429), longer than the reply may take",
			d.Round(time.Second), chat)
	}
	return sleep(ctx, d)
}
