package adapter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/id"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// maxPartBytes is the most text one reply event carries. Matrix limits a
// whole event to 64 KiB; the formatted HTML body roughly doubles the text,
// so parts stay well below that.
const maxPartBytes = 16000

// typingTimeout is how long one typing notification lasts unless renewed.
const typingTimeout = 30 * time.Second

// errEncryptedRoom refuses a send into an end-to-end encrypted room: the
// plugin cannot encrypt, and a plaintext answer there would leak it.
var errEncryptedRoom = errors.New("the room is end-to-end encrypted, which the matrix plugin does not support: not answering in plaintext")

// Send posts a reply in the room (and thread) it answers, split into parts
// well below the event size limit, each with a transaction id derived from
// the reply itself: a send retried after a timeout or a plugin restart is
// deduplicated by the homeserver, never posted twice.
func (a *Adapter) Send(ctx context.Context, r shared.Reply) ([]string, error) {
	_, client, limit, err := a.clients()
	if err != nil {
		return nil, err
	}
	if r.ConversationID == "" {
		return nil, errors.New("matrix send: reply has no room id")
	}
	roomID := id.RoomID(r.ConversationID)
	if a.rooms.encrypted(ctx, client, roomID) {
		return nil, errEncryptedRoom
	}
	parts := splitReply(r.Text)
	ids := make([]string, 0, len(parts))
	for i, part := range parts {
		content := replyContent(r, part, i)
		txn := transactionID(r, i, part)
		evID, err := a.sendPart(ctx, client, limit, roomID, content, txn)
		if err != nil {
			if fe := rejectedToken("send", err); fe != nil {
				return ids, a.fail(fe)
			}
			return ids, fmt.Errorf("sending part %d/%d of a reply in room %s: %w", i+1, len(parts), roomID, err)
		}
		ids = append(ids, string(evID))
		a.sent.add(evID)
	}
	return ids, nil
}

// sendPart sends one event, waiting out the room's rate limit and retrying
// transient failures with the same transaction id.
func (a *Adapter) sendPart(ctx context.Context, client *mautrix.Client, limit *kit.Budget, roomID id.RoomID,
	content *event.MessageEventContent, txn string) (id.EventID, error) {
	var lastErr error
	for attempt := 0; attempt < a.tune.sendRetries; attempt++ {
		if err := limit.Wait(ctx, string(roomID), kit.Final); err != nil {
			return "", err
		}
		resp, err := client.SendMessageEvent(ctx, roomID, event.EventMessage, content, mautrix.ReqSendEvent{TransactionID: txn})
		if err == nil {
			return resp.EventID, nil
		}
		lastErr = err
		if ctx.Err() != nil || rejectedToken("send", err) != nil {
			return "", err
		}
		if wait, limited := rateLimited(err); limited {
			a.log.Warn("rate limited by the homeserver", "room", roomID, "retry_in", wait)
			limit.RetryAfter(string(roomID), wait)
			continue
		}
		if c := classify(err); c.status >= 400 && c.status < 500 {
			return "", err // forbidden, unknown room, too large: retrying will not help
		}
		if err := kit.Sleep(ctx, kit.Backoff{Initial: a.tune.backoffBase, Max: a.tune.backoffMax}.Delay(attempt+1)); err != nil {
			return "", err
		}
	}
	return "", lastErr
}

// replyContent is part i of a reply: m.text (m.notice for the gateway's own
// notices and errors), Markdown rendered to HTML where it changes anything,
// in the reply's thread, the first part answering the user's message.
func replyContent(r shared.Reply, part string, i int) *event.MessageEventContent {
	content := format.RenderMarkdown(part, true, false)
	content.Body = part
	if content.FormattedBody == "" || content.FormattedBody == part {
		content.Format, content.FormattedBody = "", ""
	}
	content.MsgType = event.MsgText
	if r.Kind == shared.KindNotice || r.Kind == shared.KindError {
		content.MsgType = event.MsgNotice
	}
	content.Mentions = &event.Mentions{} // never ping a room because the agent wrote @room
	replyTo := id.EventID("")
	if i == 0 {
		replyTo = id.EventID(r.ReplyToID)
	}
	switch {
	case r.ThreadID != "":
		rel := &event.RelatesTo{Type: event.RelThread, EventID: id.EventID(r.ThreadID)}
		if replyTo != "" {
			rel.InReplyTo = &event.InReplyTo{EventID: replyTo}
		} else {
			rel.IsFallingBack = true
			rel.InReplyTo = &event.InReplyTo{EventID: id.EventID(r.ThreadID)}
		}
		content.RelatesTo = rel
	case replyTo != "":
		content.RelatesTo = &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: replyTo}}
	}
	return &content
}

// transactionID is stable for the same part of the same reply, so the
// homeserver drops a retried send instead of posting it twice.
func transactionID(r shared.Reply, i int, part string) string {
	h := sha256.New()
	for _, s := range []string{r.ConversationID, r.ThreadID, r.ReplyToID, strconv.Itoa(int(r.Kind)), strconv.Itoa(i), part} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "gw" + hex.EncodeToString(h.Sum(nil))[:32]
}

// splitReply splits a reply into parts of at most maxPartBytes, code
// fences kept balanced, never inside a UTF-8 sequence.
func splitReply(text string) []string { return kit.Chunk(text, maxPartBytes, kit.Bytes) }

// Typing shows the typing notification in a room while the agent works.
func (a *Adapter) Typing(ctx context.Context, conv shared.Conversation) error {
	s, client, err := a.configured()
	if err != nil || !s.typing || conv.ConversationID == "" {
		return err
	}
	if botID, _ := a.bot(); botID == "" {
		return nil // not logged in yet: whoami names the user that types
	}
	roomID := id.RoomID(conv.ConversationID)
	if _, err := client.UserTyping(ctx, roomID, true, typingTimeout); err != nil {
		if fe := rejectedToken("typing", err); fe != nil {
			return a.fail(fe)
		}
		return fmt.Errorf("typing in room %s: %w", roomID, err)
	}
	return nil
}
