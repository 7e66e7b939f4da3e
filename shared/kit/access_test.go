package kit

import "testing"

func TestAccessCheck(t *testing.T) {
	ids := func(v ...string) IDSet { return NewIDSet(v) }
	group := Inbound{UserID: "u1", ChatID: "c1", GuildID: "g1", Mentioned: true}
	dm := Inbound{UserID: "u1", ChatID: "d1", Direct: true}
	with := func(m Inbound, f func(*Inbound)) Inbound { f(&m); return m }
	tests := []struct {
		name   string
		policy Access
		msg    Inbound
		want   Denial
	}{
		{"open policy answers a mention", Access{RequireMention: true}, group, ""},
		{"never itself", Access{AllowBots: true}, with(dm, func(m *Inbound) { m.Self = true }), DeniedSelf},
		{"bots ignored by default", Access{}, with(group, func(m *Inbound) { m.FromBot = true }), DeniedBot},
		{"bots answered when allowed", Access{AllowBots: true}, with(group, func(m *Inbound) { m.FromBot = true }), ""},
		{"user not allowed", Access{Users: ids("u7")}, group, DeniedUser},
		{"user allowed", Access{Users: ids(" u1 ", "")}, group, ""},
		{"user list applies to DMs too", Access{Users: ids("u7")}, dm, DeniedUser},
		{"chat not allowed", Access{Chats: ids("c9")}, group, DeniedChat},
		{"chat allowed", Access{Chats: ids("c1")}, group, ""},
		{"thread follows its parent", Access{Chats: ids("c1")}, with(group, func(m *Inbound) { m.ChatID, m.ParentChatID = "t1", "c1" }), ""},
		{"thread of another chat", Access{Chats: ids("c1")}, with(group, func(m *Inbound) { m.ChatID, m.ParentChatID = "t1", "c2" }), DeniedChat},
		{"guild not allowed", Access{Guilds: ids("g9")}, group, DeniedGuild},
		{"guild allowed", Access{Guilds: ids("g1")}, group, ""},
		{"DM refused when locked to a guild", Access{Guilds: ids("g1")}, dm, DeniedDirect},
		{"DM refused when locked to chats", Access{Chats: ids("c1")}, dm, DeniedDirect},
		{"DM allowed for a listed user", Access{Guilds: ids("g1"), Users: ids("u1")}, dm, ""},
		{"DM chat listed", Access{Chats: ids("d1")}, dm, ""},
		{"DM needs no mention", Access{RequireMention: true}, with(dm, func(m *Inbound) { m.Mentioned = false }), ""},
		{"group without mention ignored", Access{RequireMention: true}, with(group, func(m *Inbound) { m.Mentioned = false }), DeniedNotAddressed},
		{"group command answered", Access{RequireMention: true}, with(group, func(m *Inbound) { m.Mentioned, m.Command = false, true }), ""},
		{"group without mention answered when not required", Access{}, with(group, func(m *Inbound) { m.Mentioned = false }), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.Check(tt.msg); got != tt.want {
				t.Errorf("Check(%+v) = %q, want %q", tt.msg, got, tt.want)
			}
		})
	}
}
