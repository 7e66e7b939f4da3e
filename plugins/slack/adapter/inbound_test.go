package adapter

import (
	"strings"
	"testing"

	"github.com/slack-go/slack/slackevents"

	"github.com/plughost/gateway/shared/kit"
)

const (
	testBotUser = "U0BOT"
	testBotID   = "B0BOT"
)

func defaults() settings {
	return settings{replyInThread: true, access: kit.Access{RequireMention: true}}
}

func TestFromMessage(t *testing.T) {
	var threads recentSet
	threads.add(threadKey("C1", "100.000001"))
	tests := []struct {
		name   string
		s      func(*settings)
		e      slackevents.MessageEvent
		want   bool
		thread string // ThreadID of the message, when wanted
		text   string
	}{
		{name: "dm", e: slackevents.MessageEvent{Channel: "D1", ChannelType: "im", User: "U1", Text: "hi", TimeStamp: "1.1"},
			want: true, text: "hi"},
		{name: "dm in a thread", e: slackevents.MessageEvent{Channel: "D1", ChannelType: "im", User: "U1", Text: "hi", TimeStamp: "1.2", ThreadTimeStamp: "1.1"},
			want: true, thread: "1.1", text: "hi"},
		{name: "channel without mention", e: slackevents.MessageEvent{Channel: "C1", ChannelType: "channel", User: "U1", Text: "hi", TimeStamp: "1.1"}},
		{name: "channel mention starts a thread", e: slackevents.MessageEvent{Channel: "C1", ChannelType: "channel", User: "U1",
			Text: "<@U0BOT> what &lt;is&gt; this &amp; that", TimeStamp: "2.5"}, want: true, thread: "2.5", text: "what <is> this & that"},
		{name: "mention with a label", e: slackevents.MessageEvent{Channel: "C1", ChannelType: "group", User: "U1",
			Text: "hey <@U0BOT|gateway-bot> /new", TimeStamp: "2.5"}, want: true, thread: "2.5", text: "hey  /new"},
		{name: "mention without reply_in_thread", s: func(s *settings) { s.replyInThread = false },
			e:    slackevents.MessageEvent{Channel: "C1", ChannelType: "channel", User: "U1", Text: "<@U0BOT> x", TimeStamp: "2.5"},
			want: true, text: "x"},
		{name: "mention in a thread stays there", s: func(s *settings) { s.replyInThread = false },
			e:    slackevents.MessageEvent{Channel: "C1", ChannelType: "channel", User: "U1", Text: "<@U0BOT> x", TimeStamp: "2.6", ThreadTimeStamp: "2.1"},
			want: true, thread: "2.1", text: "x"},
		{name: "reply in the bot's thread", e: slackevents.MessageEvent{Channel: "C1", ChannelType: "channel", User: "U1",
			Text: "more", TimeStamp: "100.2", ThreadTimeStamp: "100.000001"}, want: true, thread: "100.000001", text: "more"},
		{name: "reply in another thread", e: slackevents.MessageEvent{Channel: "C1", ChannelType: "channel", User: "U1",
			Text: "more", TimeStamp: "100.2", ThreadTimeStamp: "99.1"}},
		{name: "require_mention off", s: func(s *settings) { s.access.RequireMention = false },
			e:    slackevents.MessageEvent{Channel: "C1", ChannelType: "channel", User: "U1", Text: "hi", TimeStamp: "3.1"},
			want: true, thread: "3.1", text: "hi"},
		{name: "itself", s: func(s *settings) { s.access.AllowBots = true },
			e: slackevents.MessageEvent{Channel: "D1", ChannelType: "im", User: testBotUser, BotID: testBotID, Text: "hi", TimeStamp: "1.1"}},
		{name: "its own bot id", s: func(s *settings) { s.access.AllowBots = true },
			e: slackevents.MessageEvent{Channel: "D1", ChannelType: "im", BotID: testBotID, SubType: "bot_message", Text: "hi", TimeStamp: "1.1"}},
		{name: "another bot", e: slackevents.MessageEvent{Channel: "D1", ChannelType: "im", BotID: "B2", SubType: "bot_message", Text: "hi", TimeStamp: "1.1"}},
		{name: "another bot allowed", s: func(s *settings) { s.access.AllowBots = true },
			e:    slackevents.MessageEvent{Channel: "D1", ChannelType: "im", BotID: "B2", SubType: "bot_message", Text: "hi", TimeStamp: "1.1"},
			want: true, text: "hi"},
		{name: "edit", e: slackevents.MessageEvent{Channel: "D1", ChannelType: "im", User: "U1", SubType: "message_changed", TimeStamp: "1.1"}},
		{name: "join", e: slackevents.MessageEvent{Channel: "C1", ChannelType: "channel", User: "U1", SubType: "channel_join", Text: "<@U0BOT> joined", TimeStamp: "1.1"}},
		{name: "only a mention", e: slackevents.MessageEvent{Channel: "C1", ChannelType: "channel", User: "U1", Text: "<@U0BOT>", TimeStamp: "1.1"}},
		{name: "user not allowed", s: func(s *settings) { s.access.Users = kit.NewIDSet([]string{"U2"}) },
			e: slackevents.MessageEvent{Channel: "D1", ChannelType: "im", User: "U1", Text: "hi", TimeStamp: "1.1"}},
		{name: "channel not allowed", s: func(s *settings) { s.access.Chats = kit.NewIDSet([]string{"C2"}) },
			e: slackevents.MessageEvent{Channel: "C1", ChannelType: "channel", User: "U1", Text: "<@U0BOT> hi", TimeStamp: "1.1"}},
		{name: "control character in the channel id", e: slackevents.MessageEvent{Channel: "D\x01", ChannelType: "im", User: "U1", Text: "hi", TimeStamp: "1.1"}},
		{name: "huge user id", e: slackevents.MessageEvent{Channel: "D1", ChannelType: "im", User: strings.Repeat("U", 300), Text: "hi", TimeStamp: "1.1"}},
		{name: "dm closed when channels are restricted", s: func(s *settings) { s.access.Chats = kit.NewIDSet([]string{"C2"}) },
			e: slackevents.MessageEvent{Channel: "D1", ChannelType: "im", User: "U1", Text: "hi", TimeStamp: "1.1"}},
		{name: "dm open to allowed users", s: func(s *settings) {
			s.access.Chats = kit.NewIDSet([]string{"C2"})
			s.access.Users = kit.NewIDSet([]string{"U1"})
		}, e: slackevents.MessageEvent{Channel: "D1", ChannelType: "im", User: "U1", Text: "hi", TimeStamp: "1.1"}, want: true, text: "hi"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := defaults()
			if tc.s != nil {
				tc.s(&s)
			}
			m, denied := fromMessage(s, testBotUser, testBotID, &threads, &tc.e)
			if (m != nil) != tc.want || (m == nil) == (denied == "") {
				t.Fatalf("answered = %v (denied %q), want %v (%+v)", m != nil, denied, tc.want, m)
			}
			if m == nil {
				return
			}
			if m.ID != tc.e.Channel+"/"+tc.e.TimeStamp || m.ConversationID != tc.e.Channel || m.ThreadID != tc.thread ||
				m.Text != tc.text || m.Direct != (tc.e.ChannelType == "im") {
				t.Fatalf("message = %+v, want thread %q text %q", *m, tc.thread, tc.text)
			}
		})
	}
}

func TestFromMentionMatchesMessage(t *testing.T) {
	s := defaults()
	var threads recentSet
	msg, _ := fromMessage(s, testBotUser, testBotID, &threads, &slackevents.MessageEvent{
		Channel: "C1", ChannelType: "channel", User: "U1", Text: "<@U0BOT> hi", TimeStamp: "5.5"})
	mention, _ := fromMention(s, testBotUser, testBotID, &slackevents.AppMentionEvent{
		Channel: "C1", User: "U1", Text: "<@U0BOT> hi", TimeStamp: "5.5"})
	if msg == nil || mention == nil || *msg != *mention {
		t.Fatalf("message %+v and app_mention %+v differ: the host would answer twice", msg, mention)
	}
	edited, _ := fromMention(s, testBotUser, testBotID, &slackevents.AppMentionEvent{
		Channel: "C1", User: "U1", Text: "<@U0BOT> hi", TimeStamp: "5.5", Edited: &slackevents.Edited{User: "U1", TimeStamp: "6.0"}})
	if edited != nil {
		t.Fatal("an edit that adds a mention was answered")
	}
}

func TestRecentSetIsBounded(t *testing.T) {
	var r recentSet
	for i := range recentSetSize + 10 {
		r.add(string(rune('a'+i%26)) + string(rune(i)))
	}
	if len(r.keys) != recentSetSize {
		t.Fatalf("%d keys kept, want %d", len(r.keys), recentSetSize)
	}
	if r.has("a" + string(rune(0))) {
		t.Fatal("the oldest key was not forgotten")
	}
	if !r.has(string(rune('a'+(recentSetSize+9)%26)) + string(rune(recentSetSize+9))) {
		t.Fatal("the newest key was forgotten")
	}
}

func TestTSNano(t *testing.T) {
	for ts, want := range map[string]int64{"1700000000.000123": 1700000000_000123000, "12.5": 12_500000000, "bad": 0} {
		if got := tsNano(ts); got != want {
			t.Errorf("tsNano(%q) = %d, want %d", ts, got, want)
		}
	}
}
