package adapter

import (
	"strconv"
	"strings"
	"sync"

	"github.com/slack-go/slack/slackevents"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// Message subtypes that carry something a person said; every other subtype
// (edits, deletions, joins, topic changes) is not answered.
var saidSubtypes = map[string]bool{"": true, "thread_broadcast": true, "file_share": true, "bot_message": true}

// Why a message event that the access policy would pass is still not
// answered, for debug logs.
const (
	deniedNotSaid Denial = "not a new message (edit, deletion, join or other change)"
	deniedEmpty   Denial = "no text besides the mention"
	deniedEdited  Denial = "an edit that adds a mention"
	// deniedBadIDs: Slack's ids are short and printable; anything else is
	// not Slack, and the host would refuse it anyway.
	deniedBadIDs Denial = "ids the host cannot use (too long, not UTF-8 or with control characters)"
)

// Denial says why a message is not answered; the empty Denial answers it.
type Denial = kit.Denial

// fromMessage turns a message event into a host message, or says why the
// bot does not answer it: the access policy (kit.Access) decides, with a
// reply in a thread the bot answered in counting as addressed to it.
func fromMessage(s settings, botUserID, botID string, threads *recentSet, e *slackevents.MessageEvent) (*shared.Message, Denial) {
	if !saidSubtypes[e.SubType] {
		return nil, deniedNotSaid
	}
	inBotThread := e.ThreadTimeStamp != "" && threads.has(threadKey(e.Channel, e.ThreadTimeStamp))
	return toMessage(s, botUserID, botID, said{
		channel: e.Channel, user: e.User, botID: e.BotID, text: e.Text, ts: e.TimeStamp,
		threadTS: e.ThreadTimeStamp, direct: e.ChannelType == "im",
		mentioned: mentions(e.Text, botUserID) || inBotThread,
	})
}

// fromMention turns an app_mention event into a host message. Slack sends
// it besides the message event for the same channel message (when the app
// subscribes to both); both give the same message id, so the host gets it
// once.
func fromMention(s settings, botUserID, botID string, e *slackevents.AppMentionEvent) (*shared.Message, Denial) {
	if e.Edited != nil {
		return nil, deniedEdited
	}
	return toMessage(s, botUserID, botID, said{
		channel: e.Channel, user: e.User, botID: e.BotID, text: e.Text, ts: e.TimeStamp,
		threadTS: e.ThreadTimeStamp, direct: strings.HasPrefix(e.Channel, "D"), mentioned: true,
	})
}

// said is what message and app_mention events have in common.
type said struct {
	channel, user, botID, text, ts, threadTS string
	direct, mentioned                        bool
}

func toMessage(s settings, botUserID, botID string, m said) (*shared.Message, Denial) {
	if m.channel == "" || m.ts == "" {
		return nil, deniedNotSaid
	}
	self := (botUserID != "" && m.user == botUserID) || (botID != "" && m.botID == botID)
	if denied := s.access.Check(kit.Inbound{
		UserID:    m.user,
		ChatID:    m.channel,
		Direct:    m.direct,
		Self:      self,
		FromBot:   m.botID != "",
		Mentioned: m.mentioned,
	}); denied != "" {
		return nil, denied
	}
	text := strings.TrimSpace(unescape(stripMention(m.text, botUserID)))
	if text == "" {
		return nil, deniedEmpty
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
	if out.CheckIDs() != nil {
		return nil, deniedBadIDs
	}
	return out, ""
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
