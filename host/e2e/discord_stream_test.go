package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plughost/gateway/plugins/discord/fakediscord"
)

// shownIn returns the messages the bot shows in channel now.
func shownIn(fake *fakediscord.Server, channel string) []fakediscord.PostedMessage {
	var out []fakediscord.PostedMessage
	for _, m := range fake.Shown() {
		if m.ChannelID == channel {
			out = append(out, m)
		}
	}
	return out
}

// waitShown waits until channel shows exactly the contents ok accepts.
func waitShown(t *testing.T, fake *fakediscord.Server, channel, what string, ok func([]string) bool) []string {
	t.Helper()
	var contents []string
	eventually(t, 20*time.Second, what, func() bool {
		contents = contents[:0]
		for _, m := range shownIn(fake, channel) {
			contents = append(contents, m.Content)
		}
		return ok(contents)
	})
	return contents
}

// TestDiscordStreamedReply runs streamed replies through the real host and
// plugin: partial text is shown before the provider has finished, the final
// text is the transcript's and is never posted twice (a 429 in between),
// /stop ends a reply where it is and says so, and a plugin SIGKILLed
// mid-stream still gets the reply to the user, once.
func TestDiscordStreamedReply(t *testing.T) {
	ai := newHeldOpenAI(t)
	fake := fakediscord.New(t)
	e := newEnv(t)
	e.install("discord", "discord")
	e.writeConfig(openAIConfig(ai.Server, "sk-test-key", "") + streamingDiscord(fake))
	e.start()
	e.waitPlatform("discord", 20*time.Second, inState("running"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("requests to the fake Discord: %q", fake.Requests())
			t.Logf("requests to the provider: %d", len(ai.Requests()))
		}
	})

	// Partial text first, then the final text in the same message.
	final := "alpha beta gamma for hold one"
	fake.InjectMessage(mention("C1", "hold one"))
	waitShown(t, fake, "C1", "partial text while the provider holds", func(c []string) bool {
		return len(c) == 1 && strings.HasPrefix(final, c[0]) && len(c[0]) < len(final)
	})
	fake.RateLimit(1, 300*time.Millisecond)
	ai.releaseOne()
	waitShown(t, fake, "C1", "the final text", func(c []string) bool { return len(c) == 1 && c[0] == final })
	if n := len(fake.Messages()); n != 1 {
		t.Fatalf("%d messages posted for one streamed reply, want 1 (edited in place)", n)
	}

	// /stop mid-stream.
	fake.InjectMessage(mention("C2", "hold two"))
	waitShown(t, fake, "C2", "partial text", func(c []string) bool { return len(c) == 1 && strings.HasPrefix(c[0], "alpha") })
	fake.InjectMessage(mention("C2", "/stop"))
	waitShown(t, fake, "C2", "the stopped reply saying so", func(c []string) bool {
		for _, s := range c {
			if strings.HasPrefix(s, "alpha") && strings.HasSuffix(s, "\n\n*Stopped.*") && !strings.Contains(s, "gamma") {
				return true
			}
		}
		return false
	})

	// The transcript holds the final text of the first reply.
	fake.InjectMessage(mention("C1", "next"))
	waitShown(t, fake, "C1", "the next reply", func(c []string) bool { return len(c) == 2 })
	var hist []string
	for _, m := range ai.LastRequest().Messages[1:] {
		hist = append(hist, m.Role+":"+m.Content)
	}
	if got, want := strings.Join(hist, "|"), "user:hold one|assistant:"+final+"|user:next"; got != want {
		t.Errorf("history = %q, want %q", got, want)
	}

	// The plugin is SIGKILLed mid-stream: the restarted plugin posts the
	// whole reply once.
	fake.InjectMessage(mention("C3", "hold three"))
	waitShown(t, fake, "C3", "partial text", func(c []string) bool { return len(c) == 1 })
	st, _ := e.status()
	p, _ := st.platform("discord")
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitPlatform("discord", 20*time.Second, func(q platformStatus) bool { return q.State == "running" && q.PID != p.PID })
	ai.releaseOne()
	whole := "alpha beta gamma for hold three"
	got := waitShown(t, fake, "C3", "the whole reply after the restart", func(c []string) bool {
		return len(c) == 2 && c[1] == whole
	})
	if strings.Count(fmt.Sprint(got), whole) != 1 {
		t.Errorf("C3 shows %q, want the whole reply once", got)
	}
}

// streamingDiscord is the Discord platform block with stream_replies on.
func streamingDiscord(fake *fakediscord.Server) string {
	return strings.Replace(discordPlatform(fake, fakediscord.DefaultToken),
		"config {", "config {\n    stream_replies = true", 1)
}
