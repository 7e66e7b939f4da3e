package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/plughost/gateway/plugins/discord/fakediscord"
)

// discordPlatform is a platform block for the discord plugin against fake.
func discordPlatform(fake *fakediscord.Server, token string) string {
	return fmt.Sprintf(`
platform "discord" {
  plugin = "discord"
  config {
    token   = %q
    api_url = %q
  }
  restart {
    initial_backoff = "50ms"
    max_backoff     = "200ms"
  }
}
`, token, fake.APIURL)
}

func mention(channel, text string) *discordgo.Message {
	return &discordgo.Message{
		ChannelID: channel, GuildID: "G1",
		Author:   &discordgo.User{ID: "42", Username: "alice"},
		Content:  "<@" + fakediscord.BotUserID + "> " + text,
		Mentions: []*discordgo.User{{ID: fakediscord.BotUserID}},
	}
}

// waitPosted waits for a message with content want in channel.
func waitPosted(t *testing.T, fake *fakediscord.Server, channel, want string) fakediscord.PostedMessage {
	t.Helper()
	return fake.WaitMessage(t, 10*time.Second, fmt.Sprintf("%q to be posted in %s", want, channel),
		func(m fakediscord.PostedMessage) bool { return m.ChannelID == channel && m.Content == want })
}

func TestDiscordMessageInReplyOut(t *testing.T) {
	t.Parallel()
	fake := fakediscord.New(t)
	e := newEnv(t)
	e.install("discord", "discord")
	e.writeConfig(discordPlatform(fake, fakediscord.DefaultToken))
	e.start()
	e.waitPlatform("discord", 20*time.Second, inState("running"))

	fake.InjectMessage(mention("C1", "hello there"))
	posted := waitPosted(t, fake, "C1", "echo: hello there")
	if posted.ReplyToID == "" {
		t.Error("the reply does not reference the user's message")
	}
	// Chat commands typed as text work too.
	fake.InjectMessage(mention("C1", "/new"))
	waitPosted(t, fake, "C1", "Started a new session.")
}

func TestDiscordBadTokenFailsOnceAndStaysDown(t *testing.T) {
	t.Parallel()
	fake := fakediscord.New(t)
	e := newEnv(t)
	e.install("discord", "discord")
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(discordPlatform(fake, "not-the-token") + httpPlatform("web", web, ""))
	h := e.start()
	p := e.waitPlatform("discord", 20*time.Second, inState("failed"))
	if !p.Fatal || !strings.Contains(p.Error, "rejected") || p.Hint == "" {
		t.Fatalf("bad token: %+v, want fatal with a message and a hint", p)
	}
	// Over a 10 s window (the backoff is 50 ms) it is never started again.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, _ := e.status()
		if q, _ := st.platform("discord"); q.State != "failed" || q.Restarts != 0 {
			t.Fatalf("failed platform moved: %+v", q)
		}
		if code, body := post(t, web, `{"session":"w","text":"ok"}`); code != 200 || body["reply"] != "echo: ok" {
			t.Fatalf("the other platform stopped serving: %d %v", code, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if n := fake.Identifies(); n != 0 {
		t.Fatalf("%d identifies with a token the REST check rejected", n)
	}
	if n := strings.Count(h.log.String(), "platform failed for good"); n != 1 {
		t.Fatalf("the failure was logged %d times, want once", n)
	}
	if strings.Contains(h.log.String(), "not-the-token") {
		t.Fatal("the token reached the log")
	}
}

func TestDiscordTokenRevokedOnLiveSession(t *testing.T) {
	t.Parallel()
	fake := fakediscord.New(t)
	e := newEnv(t)
	e.install("discord", "discord")
	e.writeConfig(discordPlatform(fake, fakediscord.DefaultToken))
	e.start()
	e.waitPlatform("discord", 20*time.Second, inState("running"))
	before := fake.Identifies()

	// Discord revokes the token: REST answers 401, the live session is
	// closed with 4004 and so would every identify.
	fake.SetToken("rotated")
	fake.CloseWith(fakediscord.CloseAuthenticationFailed, "Authentication failed.")
	p := e.waitPlatform("discord", 10*time.Second, inState("failed"))
	if !p.Fatal {
		t.Fatalf("revoked token: %+v, want fatal", p)
	}
	if extra := fake.Identifies() - before; extra > 1 {
		t.Fatalf("%d identifies after the token was revoked, want at most 1", extra)
	}
}

func TestDiscordDropReconnectsAndResumes(t *testing.T) {
	t.Parallel()
	fake := fakediscord.New(t)
	e := newEnv(t)
	e.install("discord", "discord")
	e.writeConfig(discordPlatform(fake, fakediscord.DefaultToken))
	e.start()
	first := e.waitPlatform("discord", 20*time.Second, inState("running"))

	fake.Drop()
	eventually(t, 10*time.Second, "a resume", func() bool { return fake.Resumes() >= 1 })
	fake.InjectMessage(mention("C2", "after the drop"))
	waitPosted(t, fake, "C2", "echo: after the drop")
	st, _ := e.status()
	if p, _ := st.platform("discord"); p.PID != first.PID || p.State != "running" {
		t.Fatalf("a dropped connection restarted the plugin: %+v (was pid %d)", p, first.PID)
	}
}

func TestDiscordDisallowedIntentIsFatalWithHint(t *testing.T) {
	t.Parallel()
	fake := fakediscord.New(t)
	fake.SetIdentifyCloseCode(4014)
	e := newEnv(t)
	e.install("discord", "discord")
	e.writeConfig(discordPlatform(fake, fakediscord.DefaultToken))
	e.start()
	p := e.waitPlatform("discord", 20*time.Second, inState("failed"))
	if !p.Fatal || !strings.Contains(p.Hint, "Message Content") {
		t.Fatalf("4014: %+v, want fatal with the Message Content intent hint", p)
	}
	if n := fake.Identifies(); n != 1 {
		t.Fatalf("%d identifies, want 1", n)
	}
}
