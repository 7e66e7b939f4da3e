package adapter

import (
	"strconv"
	"strings"
	"sync"

	"github.com/slack-go/slack/slackevents"

	"github.com/plughost/gateway/shared"
)

// Message subtypes that carry something a person said; every other subtype
// (edits, deletions, joins, topic changes) is not answered.
var saidSubtypes = map[string]bool{"": true, "thread_broadcast": true, "file_share": true, "bot_message": true}

// fromMessage turns a message event into a host message, or nil when the
// bot should not answer it. The order matters: itself and bots first (a bot
// answering bots loops), then allowlists, then mention gating, which also
// strips the mention from the text.
func fromMessage(s settings, botUserID, botID string, threads *recentSet, e *slackevents.MessageEvent) *shared.Message {
	if !saidSubtypes[e.SubType] {
		return nil
	}
	direct := e.ChannelType == "im"
	addressed := direct || !s.requireMention || mentions(e.Text, botUserID) ||
		(e.ThreadTimeStamp != "" && threads.has(threadKey(e.Channel, e.ThreadTimeStamp)))
	return toMessage(s, botUserID, botID, said{
		channel: e.Channel, user: e.User, botID: e.BotID, text: e.Text, ts: e.TimeStamp,
		threadTS: e.ThreadTimeStamp, direct: direct, addressed: addressed,
	})
}

// fromMention turns an app_mention event into a host message. Slack sends
// it besides the message event for the same channel message (when the app
// subscribes to both); both give the same message id, so the host gets it
// once.
func fromMention(s settings, botUserID, botID string, e *slackevents.AppMentionEvent) *shared.Message {
	if e.Edited != nil {
		return nil // an edit that adds a mention is not a new message
	}
	return toMessage(s, botUserID, botID, said{
		channel: e.Channel, user: e.User, botID: e.BotID, text: e.Text, ts: e.TimeStamp,
		threadTS: e.ThreadTimeStamp, direct: strings.HasPrefix(e.Channel, "D"), addressed: true,
	})
}

// said is what message and app_mention events have in common.
type said struct {
	channel, user, botID, text, ts, threadTS string
	direct, addressed                        bool
}

func toMessage(s settings, botUserID, botID string, m said) *shared.Message {
	if m.channel == "" || m.ts == "" {
		return nil
	}
	if (botUserID != "" && m.user == botUserID) || (botID != "" && m.botID == botID) {
		return nil // never answer itself, whatever respond_to_bots says
	}
	if m.botID != "" && !s.respondToBots {
		return nil
	}
	if !allowed(s, m.user, m.channel, m.direct) || !m.addressed {
		return nil
	}
	text := strings.TrimSpace(unescape(stripMention(m.text, botUserID)))
	if text == "" {
		return nil
	}
	out := &shared.Message{
		// A ts is unique within its channel; the pair is the message's id
		// however many times and ways Slack delivers it.
		ID:             m.channel + "/" + m.ts,
		ConversationID: m.channel,
		ThreadID:       m.threadTS,
		UserID:         m.user,
		Direct:         m.direct,
		Text:           text,
		UnixNano:       tsNano(m.ts),
	}
	if out.UserID == "" {
		out.UserID = m.botID
	}
	if out.ThreadID == "" && !m.direct && s.replyInThread {
		// The reply starts a thread under this message: that thread is the
		// session, and follow-ups in it carry this ts as thread_ts.
		out.ThreadID = m.ts
	}
	return out
}

// allowed applies the allowlists. When channels are restricted, a DM passes
// only if allowed_users names its sender or its channel is listed:
// restricting the bot to some channels must not leave it open to any DM.
func allowed(s settings, user, channel string, direct bool) bool {
	if !s.allowedUsers.allows(user) {
		return false
	}
	if direct && len(s.allowedChannels) > 0 {
		return len(s.allowedUsers) > 0 || s.allowedChannels.has(channel)
	}
	return s.allowedChannels.allows(channel)
}

// mentions reports whether text mentions the bot user (<@U123> or
// <@U123|name>).
func mentions(text, botUserID string) bool {
	return botUserID != "" && (strings.Contains(text, "<@"+botUserID+">") || strings.Contains(text, "<@"+botUserID+"|"))
}

// stripMention removes the bot's mentions so the agent sees what was said
// and commands like "@bot /new" work.
func stripMention(text, botUserID string) string {
	if botUserID == "" {
		return text
	}
	text = strings.ReplaceAll(text, "<@"+botUserID+">", "")
	for {
		i := strings.Index(text, "<@"+botUserID+"|")
		if i < 0 {
			return text
		}
		j := strings.IndexByte(text[i:], '>')
		if j < 0 {
			return text
		}
		text = text[:i] + text[i+j+1:]
	}
}

// unescape undoes the three escapes Slack applies to message text.
func unescape(text string) string {
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(text)
}

// tsNano converts a Slack ts ("1700000000.123456") to Unix nanoseconds.
func tsNano(ts string) int64 {
	sec, frac, _ := strings.Cut(ts, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return 0
	}
	frac = (frac + "000000000")[:9]
	n, _ := strconv.ParseInt(frac, 10, 64)
	return s*1_000_000_000 + n
}

func threadKey(channel, threadTS string) string { return channel + "/" + threadTS }

// recentSet remembers the last few thousand keys, forgetting the oldest
// first: enough to recognise a redelivery or a recent thread, bounded
// however long the plugin runs.
type recentSet struct {
	mu    sync.Mutex
	keys  map[string]struct{}
	order []string
	next  int
}

const recentSetSize = 4096

func (r *recentSet) has(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.keys[key]
	return ok
}

func (r *recentSet) add(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys == nil {
		r.keys = make(map[string]struct{}, recentSetSize)
		r.order = make([]string, recentSetSize)
	}
	if _, ok := r.keys[key]; ok {
		return
	}
	if old := r.order[r.next]; old != "" {
		delete(r.keys, old)
	}
	r.order[r.next] = key
	r.next = (r.next + 1) % recentSetSize
	r.keys[key] = struct{}{}
}
