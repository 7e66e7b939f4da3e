package adapter

import (
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/plughost/gateway/shared/kit"
)

const testBot = "999"

func TestInbound(t *testing.T) {
	alice := &discordgo.User{ID: "1", Username: "alice"}
	otherBot := &discordgo.User{ID: "2", Username: "robot", Bot: true}
	threads := &threadSet{}
	threads.add(&discordgo.Channel{ID: "T1", ParentID: "C1", Type: discordgo.ChannelTypeGuildPublicThread})

	base := func(mod func(*settings)) settings {
		s := settings{access: kit.Access{RequireMention: true}, typing: true}
		if mod != nil {
			mod(&s)
		}
		return s
	}
	guildMsg := func(channel, content string, author *discordgo.User) *discordgo.Message {
		return &discordgo.Message{ID: "m1", ChannelID: channel, GuildID: "G1", Content: content, Author: author, Timestamp: time.Unix(100, 0)}
	}
	dm := &discordgo.Message{ID: "m2", ChannelID: "D1", Content: "hi there", Author: alice}
	mention := "<@" + testBot + "> hello"

	tests := []struct {
		name     string
		s        settings
		m        *discordgo.Message
		wantText string // "" = dropped
	}{
		{"guild mention answered, mention stripped", base(nil), guildMsg("C1", mention, alice), "hello"},
		{"nick mention form", base(nil), guildMsg("C1", "<@!"+testBot+"> /new", alice), "/new"},
		{"guild without mention ignored", base(nil), guildMsg("C1", "hello", alice), ""},
		{"guild without mention, gating off", base(func(s *settings) { s.access.RequireMention = false }), guildMsg("C1", "hello", alice), "hello"},
		{"mention via mentions list", base(nil), &discordgo.Message{ChannelID: "C1", GuildID: "G1", Content: "yo", Author: alice,
			Mentions: []*discordgo.User{{ID: testBot}}}, "yo"},
		{"reply to the bot counts as a mention", base(nil), &discordgo.Message{ChannelID: "C1", GuildID: "G1", Content: "and then?", Author: alice,
			Type: discordgo.MessageTypeReply, ReferencedMessage: &discordgo.Message{Author: &discordgo.User{ID: testBot}}}, "and then?"},
		{"DM always answered", base(nil), dm, "hi there"},
		{"self ignored", base(func(s *settings) { s.access.RequireMention = false }), guildMsg("C1", "x", &discordgo.User{ID: testBot, Bot: true}), ""},
		{"bots ignored by default", base(nil), guildMsg("C1", mention, otherBot), ""},
		{"bots answered when allowed", base(func(s *settings) { s.access.AllowBots = true }), guildMsg("C1", mention, otherBot), "hello"},
		{"webhooks count as bots", base(nil), &discordgo.Message{ChannelID: "C1", GuildID: "G1", Content: mention, Author: alice, WebhookID: "w"}, ""},
		{"mention only is empty", base(nil), guildMsg("C1", "<@"+testBot+">", alice), ""},
		{"system message ignored", base(nil), &discordgo.Message{ChannelID: "C1", GuildID: "G1", Content: mention, Author: alice,
			Type: discordgo.MessageTypeGuildMemberJoin}, ""},
		{"user not allowed", base(func(s *settings) { s.access.Users = kit.NewIDSet([]string{"7"}) }), guildMsg("C1", mention, alice), ""},
		{"user allowed", base(func(s *settings) { s.access.Users = kit.NewIDSet([]string{"1"}) }), guildMsg("C1", mention, alice), "hello"},
		{"channel not allowed", base(func(s *settings) { s.access.Chats = kit.NewIDSet([]string{"C9"}) }), guildMsg("C1", mention, alice), ""},
		{"channel allowed", base(func(s *settings) { s.access.Chats = kit.NewIDSet([]string{"C1"}) }), guildMsg("C1", mention, alice), "hello"},
		{"thread follows its parent's allowlist", base(func(s *settings) { s.access.Chats = kit.NewIDSet([]string{"C1"}) }), guildMsg("T1", mention, alice), "hello"},
		{"guild not allowed", base(func(s *settings) { s.access.Guilds = kit.NewIDSet([]string{"G9"}) }), guildMsg("C1", mention, alice), ""},
		{"guild allowed", base(func(s *settings) { s.access.Guilds = kit.NewIDSet([]string{"G1"}) }), guildMsg("C1", mention, alice), "hello"},
		{"DM refused when locked to a guild", base(func(s *settings) { s.access.Guilds = kit.NewIDSet([]string{"G1"}) }), dm, ""},
		{"DM from a listed user when locked to a guild", base(func(s *settings) {
			s.access.Guilds = kit.NewIDSet([]string{"G1"})
			s.access.Users = kit.NewIDSet([]string{"1"})
		}), dm, "hi there"},
		{"DM channel listed", base(func(s *settings) { s.access.Chats = kit.NewIDSet([]string{"D1"}) }), dm, "hi there"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := inbound(tt.s, testBot, threads, tt.m)
			switch {
			case tt.wantText == "" && got != nil:
				t.Fatalf("message delivered as %+v, want it dropped", got)
			case tt.wantText != "" && got == nil:
				t.Fatalf("message dropped, want text %q", tt.wantText)
			case got != nil && got.Text != tt.wantText:
				t.Fatalf("text = %q, want %q", got.Text, tt.wantText)
			}
		})
	}
}

func TestInboundFields(t *testing.T) {
	threads := &threadSet{}
	threads.add(&discordgo.Channel{ID: "T1", ParentID: "C1", Type: discordgo.ChannelTypeGuildPublicThread})
	s := settings{}
	at := time.Unix(1700000000, 5)
	m := &discordgo.Message{ID: "m9", ChannelID: "T1", GuildID: "G1", Content: "in a thread", Timestamp: at,
		Author: &discordgo.User{ID: "1", Username: "alice", GlobalName: "Alice A."},
		Member: &discordgo.Member{Nick: "ali"}}
	got := inbound(s, testBot, threads, m)
	if got == nil {
		t.Fatal("dropped")
	}
	if got.ID != "m9" || got.ConversationID != "T1" || got.ThreadID != "T1" || got.GuildID != "G1" ||
		got.UserID != "1" || got.UserName != "ali" || got.Direct || got.UnixNano != at.UnixNano() {
		t.Errorf("got %+v", got)
	}
	threads.remove("T1")
	if got := inbound(s, testBot, threads, m); got == nil || got.ThreadID != "" {
		t.Errorf("after THREAD_DELETE: got %+v, want a plain channel message", got)
	}
}
