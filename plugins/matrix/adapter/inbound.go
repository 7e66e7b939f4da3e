package adapter

import (
	"context"
	"sort"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// handleSync reads one /sync answer: it joins rooms the bot is invited to
// (auto_join), learns room facts (members, encryption), and hands the
// messages the bot should answer to the host, one at a time, each once the
// host has taken the one before. On the first sync (no cursor) every
// message is history and is skipped.
//
// Cursors: a message carries the sync token after which the host may resume
// without losing it. Every message of a batch but the last carries since
// (the batch is fetched again after a restart, and the host drops ids it
// already took); the last carries next_batch. A batch with nothing for the
// host moves the host's cursor with a checkpoint when it had anything at
// all, and always on the first sync: a restart before the first message
// then resumes where the bot began, instead of taking what came meanwhile
// for history.
func (a *Adapter) handleSync(ctx context.Context, events chan<- shared.Event, resp *mautrix.RespSync, since string, first bool) error {
	s, client, err := a.configured()
	if err != nil {
		return err
	}
	botID, botName := a.bot()
	for roomID, room := range resp.Rooms.Invite {
		a.invited(ctx, client, s, botID, roomID, room)
	}
	for roomID := range resp.Rooms.Leave {
		a.rooms.forget(roomID)
	}
	var msgs []*shared.Message
	for _, roomID := range sortedRooms(resp.Rooms.Join) {
		room := resp.Rooms.Join[roomID]
		a.rooms.learn(roomID, room)
		if room.Timeline.Limited && !first {
			a.log.Warn("the homeserver left out older messages of a room (more arrived than one /sync returns): those are not answered",
				"room", roomID, "limit", maxTimelineEvents)
		}
		for _, evt := range room.Timeline.Events {
			if first {
				continue
			}
			if m := a.inbound(ctx, client, s, botID, botName, roomID, evt); m != nil {
				m.Cursor = since
				msgs = append(msgs, m)
			}
		}
	}
	if len(msgs) > 0 {
		msgs[len(msgs)-1].Cursor = resp.NextBatch
	}
	for _, m := range msgs {
		if err := shared.Deliver(ctx, events, m); err != nil {
			return err
		}
	}
	moved := len(resp.Rooms.Join)+len(resp.Rooms.Invite)+len(resp.Rooms.Leave) > 0
	if len(msgs) == 0 && resp.NextBatch != "" && resp.NextBatch != since && (first || moved) {
		return shared.Checkpoint(ctx, events, resp.NextBatch)
	}
	return nil
}

// sortedRooms orders the rooms of a sync answer so messages are delivered
// in the same order on every try.
func sortedRooms(rooms map[id.RoomID]*mautrix.SyncJoinedRoom) []id.RoomID {
	out := make([]id.RoomID, 0, len(rooms))
	for r := range rooms {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// invited accepts an invite when auto_join is on and the inviter (and room)
// pass the allowlists.
func (a *Adapter) invited(ctx context.Context, client *mautrix.Client, s settings, botID id.UserID, roomID id.RoomID, room *mautrix.SyncInvitedRoom) {
	if !s.autoJoin {
		return
	}
	inviter := id.UserID("")
	for _, evt := range room.State.Events {
		if evt.Type == event.StateMember && evt.GetStateKey() == string(botID) {
			inviter = evt.Sender
		}
	}
	if !s.access.Users.Allows(string(inviter)) || !s.access.Chats.Allows(string(roomID)) {
		a.log.Info("ignoring an invite", "room", roomID, "inviter", inviter)
		return
	}
	if _, err := client.JoinRoomByID(ctx, roomID); err != nil {
		if fe := rejectedToken("join", err); fe != nil {
			a.fail(fe)
			return
		}
		a.log.Warn("could not join a room the bot was invited to", "room", roomID, "inviter", inviter, "error", err)
		return
	}
	a.log.Info("joined a room", "room", roomID, "inviter", inviter)
}

// inbound turns a timeline event into a host message, or nil when the bot
// should not answer it. Order: own and non-text events first, then
// encryption, then the toolkit's access policy (allowlists, and mention
// gating in rooms that are not direct chats; a bare command is not enough
// in a room, where several bots may listen).
func (a *Adapter) inbound(ctx context.Context, client *mautrix.Client, s settings, botID id.UserID, botName string, roomID id.RoomID, evt *event.Event) *shared.Message {
	if evt.Sender == botID {
		return nil
	}
	if evt.Type == event.EventEncrypted {
		if a.rooms.warnEncrypted(roomID) {
			a.log.Warn("a message arrived in an end-to-end encrypted room; this plugin does not support encryption and will not answer there",
				"room", roomID)
		}
		return nil
	}
	if evt.Type != event.EventMessage {
		return nil
	}
	if err := evt.Content.ParseRaw(evt.Type); err != nil {
		return nil
	}
	msg := evt.Content.AsMessage()
	if msg.MsgType != event.MsgText && msg.MsgType != event.MsgEmote {
		return nil // notices (other bots), media, edits' fallbacks below
	}
	if msg.RelatesTo != nil && msg.RelatesTo.Type == event.RelReplace {
		return nil // an edit of an earlier message: not a new question
	}
	if a.rooms.encrypted(ctx, client, roomID) {
		return nil // never answer in plaintext in an encrypted room
	}
	in := kit.Inbound{UserID: string(evt.Sender), ChatID: string(roomID)}
	if s.access.Users.Allows(in.UserID) && s.access.Chats.Allows(in.ChatID) {
		// Only now is it worth asking how many members the room has.
		in.Direct = a.rooms.direct(ctx, client, roomID)
		in.Mentioned = !in.Direct && a.mentionsBot(msg, botID, botName)
	}
	if denial := s.access.Check(in); denial != "" {
		a.log.Trace("not answering", "room", roomID, "event", evt.ID, "reason", string(denial))
		return nil
	}
	direct := in.Direct
	text := msg.Body
	if !direct {
		text = stripMention(text, botID, botName)
	}
	text = strings.TrimSpace(stripReplyFallback(text))
	if text == "" {
		return nil
	}
	out := &shared.Message{
		ID:             string(evt.ID),
		ConversationID: string(roomID),
		UserID:         string(evt.Sender),
		UserName:       localpart(evt.Sender),
		Direct:         direct,
		Text:           text,
		UnixNano:       evt.Timestamp * 1_000_000,
	}
	if msg.RelatesTo != nil && msg.RelatesTo.Type == event.RelThread && msg.RelatesTo.EventID != "" {
		out.ThreadID = string(msg.RelatesTo.EventID)
	}
	return out
}

// mentionsBot reports whether a room message addresses the bot: listed in
// m.mentions, its user id or display name in the text, or a reply to one of
// the bot's own messages.
func (a *Adapter) mentionsBot(msg *event.MessageEventContent, botID id.UserID, botName string) bool {
	if msg.Mentions != nil {
		for _, u := range msg.Mentions.UserIDs {
			if u == botID {
				return true
			}
		}
	}
	lower := strings.ToLower(msg.Body)
	if botID != "" && strings.Contains(lower, strings.ToLower(string(botID))) {
		return true
	}
	if botName != "" && strings.Contains(lower, strings.ToLower(botName)) {
		return true
	}
	if strings.Contains(msg.FormattedBody, "https://matrix.to/#/"+string(botID)) {
		return true
	}
	if msg.RelatesTo != nil && msg.RelatesTo.InReplyTo != nil && !msg.RelatesTo.IsFallingBack {
		return a.sent.has(msg.RelatesTo.InReplyTo.EventID)
	}
	return false
}

// stripMention removes a leading mention of the bot ("Bot: hi", "@bot:hs hi")
// and any other occurrence of its user id, so "@bot /new" works as a command.
func stripMention(text string, botID id.UserID, botName string) string {
	t := strings.TrimSpace(text)
	for _, prefix := range []string{string(botID), botName} {
		if prefix == "" {
			continue
		}
		if len(t) >= len(prefix) && strings.EqualFold(t[:len(prefix)], prefix) {
			t = strings.TrimLeft(t[len(prefix):], ":, ")
			break
		}
	}
	if botID != "" {
		t = strings.ReplaceAll(t, string(botID), "")
	}
	return t
}

// stripReplyFallback drops the "> <@user> quoted" lines older clients put
// before a reply's text.
func stripReplyFallback(text string) string {
	if !strings.HasPrefix(text, "> ") {
		return text
	}
	lines := strings.Split(text, "\n")
	i := 0
	for i < len(lines) && strings.HasPrefix(lines[i], ">") {
		i++
	}
	return strings.Join(lines[i:], "\n")
}

// localpart is the user id without "@" and server, the name to show.
func localpart(u id.UserID) string {
	lp, _, err := u.Parse()
	if err != nil || lp == "" {
		return string(u)
	}
	return lp
}
