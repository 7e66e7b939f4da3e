package adapter

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-telegram/bot/models"

	"github.com/plughost/gateway/plugins/telegram/faketelegram"
	"github.com/plughost/gateway/shared/kit"
)

var testBot = &models.User{ID: faketelegram.BotID, IsBot: true, Username: faketelegram.BotUsername}

// withEntities gives m the entities Telegram would (the fake computes them
// the way the server does when it injects a message).
func withEntities(t *testing.T, m *models.Message) *models.Message {
	t.Helper()
	fake := faketelegram.New(t)
	fake.Inject(m)
	return m
}

// only is settings allowing only users and chats, mentions required.
func only(users, chats []string) settings {
	return settings{access: kit.Access{RequireMention: true, Users: kit.NewIDSet(users), Chats: kit.NewIDSet(chats)}}
}

func TestInboundAddressing(t *testing.T) {
	defaults := settings{access: kit.Access{RequireMention: true}}
	botMessage := faketelegram.Posted{MessageID: 77, ChatID: -100, Text: "earlier answer"}
	cases := []struct {
		name   string
		s      settings
		m      *models.Message
		want   string // "" = not answered
		thread string
	}{
		{"private always", defaults, faketelegram.Private(5, "hello"), "hello", ""},
		{"group without mention", defaults, faketelegram.Group(-100, 5, "hello all"), "", ""},
		{"group mention stripped", defaults, faketelegram.Group(-100, 5, faketelegram.Mention("what time is it")), "what time is it", ""},
		{"mention mid-text", defaults, faketelegram.Group(-100, 5, "hey @"+faketelegram.BotUsername+" there"), "hey  there", ""},
		{"mention after astral chars", defaults, faketelegram.Group(-100, 5, "😀😀 @"+faketelegram.BotUsername+" ok"), "😀😀  ok", ""},
		{"mention case-insensitive", defaults, faketelegram.Group(-100, 5, "@GATEWAY_test_BOT hi"), "hi", ""},
		{"other mention", defaults, faketelegram.Group(-100, 5, "@someone_else hi"), "", ""},
		{"command", defaults, faketelegram.Group(-100, 5, "/new"), "/new", ""},
		{"command for this bot", defaults, faketelegram.Group(-100, 5, "/new@"+faketelegram.BotUsername), "/new", ""},
		{"command with args", defaults, faketelegram.Group(-100, 5, "/model@"+faketelegram.BotUsername+" openai/gpt"), "/model openai/gpt", ""},
		{"command for another bot", defaults, faketelegram.Group(-100, 5, "/new@other_bot"), "", ""},
		{"command for another bot in private", defaults, faketelegram.Private(5, "/new@other_bot"), "", ""},
		{"mention then command", defaults, faketelegram.Group(-100, 5, faketelegram.Mention("/new")), "/new", ""},
		{"reply to the bot", defaults, faketelegram.ReplyTo(faketelegram.Group(-100, 5, "and then?"), botMessage), "and then?", ""},
		{"require_mention off", settings{}, faketelegram.Group(-100, 5, "hello all"), "hello all", ""},
		{"topic without mention", defaults, faketelegram.Topic(-100, 9, 5, "chatter"), "", ""},
		{"topic mention", defaults, faketelegram.Topic(-100, 9, 5, faketelegram.Mention("hi")), "hi", "9"},
		{"only mention", defaults, faketelegram.Group(-100, 5, "@"+faketelegram.BotUsername), "", ""},
		{"allowed user", only([]string{"5"}, []string{}), faketelegram.Private(5, "hi"), "hi", ""},
		{"other user", only([]string{"6"}, []string{}), faketelegram.Private(5, "hi"), "", ""},
		{"allowed chat", only([]string{}, []string{"-100"}), faketelegram.Group(-100, 5, "/new"), "/new", ""},
		{"other chat", only([]string{}, []string{"-200"}), faketelegram.Group(-100, 5, "/new"), "", ""},
		{"chats restricted, private not listed", only([]string{}, []string{"-100"}), faketelegram.Private(5, "hi"), "", ""},
		{"chats restricted, private listed", only([]string{}, []string{"5"}), faketelegram.Private(5, "hi"), "hi", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := withEntities(t, c.m)
			got, _ := inbound(c.s, testBot, m)
			if c.want == "" {
				if got != nil {
					t.Fatalf("answered %+v, want ignored", got)
				}
				return
			}
			if got == nil {
				t.Fatalf("ignored, want %q", c.want)
			}
			if got.Text != c.want || got.ThreadID != c.thread {
				t.Fatalf("text %q thread %q, want %q %q", got.Text, got.ThreadID, c.want, c.thread)
			}
		})
	}
}

func TestInboundIgnoresBotsChannelsAndEmpty(t *testing.T) {
	s := settings{}
	fromBot := faketelegram.Private(5, "hi")
	fromBot.From.IsBot = true
	self := faketelegram.Private(5, "hi")
	self.From = testBot
	channel := faketelegram.Group(-100, 5, "post")
	channel.Chat.Type = models.ChatTypeChannel
	sticker := faketelegram.Private(5, "")
	for name, m := range map[string]*models.Message{"bot": fromBot, "self": self, "channel": channel, "no text": sticker, "nil": nil} {
		if got, _ := inbound(s, testBot, m); got != nil {
			t.Errorf("%s: answered %+v", name, got)
		}
	}
	captioned := faketelegram.Private(5, "")
	captioned.Caption = "look at this"
	if got, _ := inbound(s, testBot, captioned); got == nil || got.Text != "look at this" {
		t.Errorf("caption: %+v", got)
	}
}

func TestMessageIDRoundTrip(t *testing.T) {
	chat, id, ok := parseMessageID(messageID(-1001234567890, 42))
	if !ok || chat != -1001234567890 || id != 42 {
		t.Fatalf("round trip = %d %d %v", chat, id, ok)
	}
	for _, bad := range []string{"", "42", "a:b", "1:"} {
		if _, _, ok := parseMessageID(bad); ok {
			t.Errorf("parseMessageID(%q) ok", bad)
		}
	}
}

// FuzzAddress: entities come from the network; whatever their offsets (past
// the end, inside a surrogate pair, overlapping), address must not panic and
// must turn valid UTF-8 into valid UTF-8.
func FuzzAddress(f *testing.F) {
	f.Add("@gateway_test_bot hi", 0, 17, "mention")
	f.Add("/new@gateway_test_bot", 0, 21, "bot_command")
	f.Add("😀@gateway_test_bot", 1, 17, "mention")
	f.Add("/x@other_bot", 0, 12, "bot_command")
	f.Add("abc", 2, 100, "mention")
	f.Fuzz(func(t *testing.T, text string, off, n int, typ string) {
		text = strings.ToValidUTF8(text, "\uFFFD") // as JSON decoding leaves it
		entities := []models.MessageEntity{{Type: models.MessageEntityType(typ), Offset: off, Length: n},
			{Type: models.MessageEntityTypeMention, Offset: n, Length: off}}
		out, _, _, _ := address(text, entities, faketelegram.BotUsername, faketelegram.BotID)
		if !utf8.ValidString(out) {
			t.Fatalf("address(%q) = %q: not valid UTF-8", text, out)
		}
	})
}
