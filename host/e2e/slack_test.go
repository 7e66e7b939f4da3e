package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/plughost/gateway/plugins/slack/fakeslack"
)

// slackPlatform is a platform block for the slack plugin against fake.
func slackPlatform(fake *fakeslack.Server, botToken, appToken, extra string) string {
	return fmt.Sprintf(`
platform "slack" {
  plugin = "slack"
  access {
    dm = "open" # these tests are about Slack, not pairing (access_test.go)
  }
  config {
    bot_token = %q
    app_token = %q
    api_url   = %q
    %s
  }
  restart {
    initial_backoff = "50ms"
    max_backoff     = "200ms"
  }
}
`, botToken, appToken, fake.APIURL, extra)
}

// startSlack runs a gateway with the slack plugin against fake and waits
// until it is running.
func startSlack(t *testing.T, fake *fakeslack.Server, extra string) (*env, *host) {
	t.Helper()
	e := newEnv(t)
	e.install("slack", "slack")
	e.writeConfig(slackPlatform(fake, fakeslack.DefaultBotToken, fakeslack.DefaultAppToken, extra))
	h := e.start()
	e.waitPlatform("slack", 20*time.Second, inState("running"))
	return e, h
}

// waitSlackPosted waits for a message with text want in channel.
func waitSlackPosted(t *testing.T, fake *fakeslack.Server, channel, want string) fakeslack.PostedMessage {
	t.Helper()
	var found fakeslack.PostedMessage
	eventually(t, 10*time.Second, fmt.Sprintf("%q to be posted in %s", want, channel), func() bool {
		for _, m := range fake.Posted() {
			if m.Channel == channel && m.Text == want {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// postedCount counts the posted messages whose text contains s.
func postedCount(fake *fakeslack.Server, s string) int {
	n := 0
	for _, m := range fake.Posted() {
		if strings.Contains(m.Text, s) {
			n++
		}
	}
	return n
}

func mentionText(text string) string { return "<@" + fakeslack.BotUserID + "> " + text }

func TestSlackDMsMentionsAndThreads(t *testing.T) {
	t.Parallel()
	fake := fakeslack.New(t)
	startSlack(t, fake, "")

	// A DM is answered in the DM, not in a thread.
	dm := fake.InjectMessage(fakeslack.Message{Channel: "D1", ChannelType: "im", User: "U1", Text: "hello dm"})
	if p := waitSlackPosted(t, fake, "D1", "echo: hello dm"); p.ThreadTS != "" {
		t.Errorf("a DM reply went to thread %q", p.ThreadTS)
	}
	// A channel message without a mention is not answered.
	quiet := fake.InjectMessage(fakeslack.Message{Channel: "C1", User: "U1", Text: "just chatting"})
	// A mention arrives twice (message and app_mention): one answer, in a
	// thread under the message.
	ts := fake.NewTS()
	m1 := fake.InjectMessage(fakeslack.Message{Channel: "C1", User: "U1", Text: mentionText("hi &amp; bye"), TS: ts})
	m2 := fake.InjectAppMention(fakeslack.Message{Channel: "C1", User: "U1", Text: mentionText("hi &amp; bye"), TS: ts})
	if p := waitSlackPosted(t, fake, "C1", "echo: hi &amp; bye"); p.ThreadTS != ts {
		t.Errorf("the mention's reply went to thread %q, want %q", p.ThreadTS, ts)
	}
	// In the thread the bot answered in, no mention is needed.
	follow := fake.InjectMessage(fakeslack.Message{Channel: "C1", User: "U1", Text: "and then?", ThreadTS: ts})
	if p := waitSlackPosted(t, fake, "C1", "echo: and then?"); p.ThreadTS != ts {
		t.Errorf("the follow-up's reply went to thread %q, want %q", p.ThreadTS, ts)
	}
	// A mention inside someone else's thread is answered in that thread.
	other := fake.NewTS()
	inThread := fake.InjectMessage(fakeslack.Message{Channel: "C2", User: "U2", Text: mentionText("in a thread"), ThreadTS: other})
	if p := waitSlackPosted(t, fake, "C2", "echo: in a thread"); p.ThreadTS != other {
		t.Errorf("reply in thread %q, want %q", p.ThreadTS, other)
	}
	// Never itself, nor other bots; nor edits.
	self := fake.InjectMessage(fakeslack.Message{Channel: "C1", User: fakeslack.BotUserID, BotID: fakeslack.BotID, Text: mentionText("myself")})
	bot := fake.InjectMessage(fakeslack.Message{Channel: "C1", BotID: "B2", SubType: "bot_message", Text: mentionText("another bot")})
	edit := fake.InjectMessage(fakeslack.Message{Channel: "C1", User: "U1", SubType: "message_changed", Text: mentionText("edited")})
	noMention := fake.InjectMessage(fakeslack.Message{Channel: "C1", User: "U1", Text: "unrelated thread", ThreadTS: fake.NewTS()})
	// The plugin reads envelopes in order: once the last one is answered,
	// every earlier one was decided.
	fake.InjectMessage(fakeslack.Message{Channel: "D1", ChannelType: "im", User: "U1", Text: "last"})
	waitSlackPosted(t, fake, "D1", "echo: last")

	for _, s := range []string{"just chatting", "myself", "another bot", "edited", "unrelated thread"} {
		if n := postedCount(fake, s); n != 0 {
			t.Errorf("%q was answered %d times, want never", s, n)
		}
	}
	if n := postedCount(fake, "hi &amp; bye"); n != 1 {
		t.Errorf("the mention was answered %d times, want once", n)
	}
	for _, env := range []string{dm, quiet, m1, m2, follow, inThread, self, bot, edit, noMention} {
		if !fake.Acked(env) {
			t.Errorf("envelope %s was not acknowledged", env)
		}
	}
}

func TestSlackRedeliveredEnvelopeAnsweredOnce(t *testing.T) {
	t.Parallel()
	fake := fakeslack.New(t)
	e, _ := startSlack(t, fake, "")
	first, _ := e.status()
	p0, _ := first.platform("slack")

	env := fake.InjectMessage(fakeslack.Message{Channel: "D1", ChannelType: "im", User: "U1", Text: "only once"})
	waitSlackPosted(t, fake, "D1", "echo: only once")
	eventually(t, 10*time.Second, "the envelope to be acknowledged", func() bool { return fake.Acked(env) })

	// The connection drops; Slack, not having seen the ack, sends the
	// envelope again (retry_attempt 1) on the new connection.
	fake.DropConnections()
	eventually(t, 20*time.Second, "a new connection", func() bool { return fake.Opened() == 2 && fake.OpenConnections() == 1 })
	fake.Redeliver(env)
	eventually(t, 10*time.Second, "the redelivery to be acknowledged", func() bool { return fake.Acked(env) })
	fake.InjectMessage(fakeslack.Message{Channel: "D1", ChannelType: "im", User: "U1", Text: "marker"})
	waitSlackPosted(t, fake, "D1", "echo: marker")
	if n := postedCount(fake, "only once"); n != 1 {
		t.Fatalf("a redelivered envelope was answered %d times, want once", n)
	}
	st, _ := e.status()
	if p, _ := st.platform("slack"); p.PID != p0.PID {
		t.Fatalf("a dropped connection restarted the plugin: pid %d, was %d", p.PID, p0.PID)
	}
}

func TestSlackUnackedEnvelopeComesBackAfterReconnect(t *testing.T) {
	t.Parallel()
	fake := fakeslack.New(t)
	e, _ := startSlack(t, fake, "")
	// Slack refreshes the connection; an envelope sent meanwhile waits for
	// the new one.
	fake.Disconnect("refresh_requested")
	env := fake.InjectMessage(fakeslack.Message{Channel: "D3", ChannelType: "im", User: "U1", Text: "across a refresh"})
	waitSlackPosted(t, fake, "D3", "echo: across a refresh")
	eventually(t, 10*time.Second, "the envelope to be acknowledged", func() bool { return fake.Acked(env) })
	e.waitPlatform("slack", 10*time.Second, inState("running"))
	if n := fake.MaxOpenConnections(); n != 1 {
		t.Fatalf("%d Socket Mode connections were open at once, want 1", n)
	}
	if n := postedCount(fake, "across a refresh"); n != 1 {
		t.Fatalf("answered %d times, want once", n)
	}
}

func TestSlackDisconnectAndDropReconnect(t *testing.T) {
	t.Parallel()
	fake := fakeslack.New(t)
	e, _ := startSlack(t, fake, "")
	first, _ := e.status()
	p0, _ := first.platform("slack")

	// Slack asks for a new connection: the bot closes the old one and
	// opens another at once.
	fake.Disconnect("refresh_requested")
	eventually(t, 10*time.Second, "a second connection", func() bool { return fake.Opened() == 2 && fake.OpenConnections() == 1 })
	fake.InjectMessage(fakeslack.Message{Channel: "D1", ChannelType: "im", User: "U1", Text: "after refresh"})
	waitSlackPosted(t, fake, "D1", "echo: after refresh")

	// A dropped socket: degraded while the bot waits to reconnect, then
	// running again on a new connection.
	fake.DropConnections()
	e.waitPlatform("slack", 10*time.Second, inState("degraded"))
	e.waitPlatform("slack", 20*time.Second, inState("running"))
	fake.InjectMessage(fakeslack.Message{Channel: "D1", ChannelType: "im", User: "U1", Text: "after drop"})
	waitSlackPosted(t, fake, "D1", "echo: after drop")

	if n := fake.MaxOpenConnections(); n != 1 {
		t.Fatalf("%d Socket Mode connections were open at once, want 1 (a stale one eats events)", n)
	}
	st, _ := e.status()
	if p, _ := st.platform("slack"); p.PID != p0.PID || p.Restarts != 0 {
		t.Fatalf("reconnecting restarted the plugin: %+v (was pid %d)", p, p0.PID)
	}
}

func TestSlackPluginKilledMessagesAnsweredOnceAfterRestart(t *testing.T) {
	t.Parallel()
	fake := fakeslack.New(t)
	e, _ := startSlack(t, fake, "")
	first := e.waitPlatform("slack", 10*time.Second, inState("running"))

	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the killed plugin's connection to close", func() bool { return fake.OpenConnections() == 0 })
	// Messages sent while the plugin is down wait at Slack, unacknowledged.
	var envs []string
	for i := range 3 {
		envs = append(envs, fake.InjectMessage(fakeslack.Message{Channel: "D5", ChannelType: "im", User: "U1",
			Text: fmt.Sprintf("while down %d", i)}))
	}
	e.waitPlatform("slack", 20*time.Second, func(p platformStatus) bool { return p.State == "running" && p.PID != first.PID })
	for i, env := range envs {
		waitSlackPosted(t, fake, "D5", fmt.Sprintf("echo: while down %d", i))
		eventually(t, 10*time.Second, "the ack", func() bool { return fake.Acked(env) })
	}
	fake.InjectMessage(fakeslack.Message{Channel: "D5", ChannelType: "im", User: "U1", Text: "marker"})
	waitSlackPosted(t, fake, "D5", "echo: marker")
	for i := range 3 {
		if n := postedCount(fake, fmt.Sprintf("while down %d", i)); n != 1 {
			t.Errorf("message %d was answered %d times, want once", i, n)
		}
	}
	if n := fake.MaxOpenConnections(); n != 1 {
		t.Fatalf("%d connections open at once, want 1", n)
	}
}

// TestSlackEnvelopeRedeliveredAfterAPluginRestartAnsweredOnce: the plugin
// handed a message to the host, which answered it, and died before Slack
// saw the acknowledgement. Slack delivers the envelope again (retry_attempt
// 1) to the restarted plugin, which does not remember it: only the host
// knows it took that message id, and it answers once.
func TestSlackEnvelopeRedeliveredAfterAPluginRestartAnsweredOnce(t *testing.T) {
	t.Parallel()
	fake := fakeslack.New(t)
	e, _ := startSlack(t, fake, "")
	first := e.waitPlatform("slack", 10*time.Second, inState("running"))

	fake.LoseAcks(true)
	env := fake.InjectMessage(fakeslack.Message{Channel: "D7", ChannelType: "im", User: "U1", Text: "taken, ack lost"})
	waitSlackPosted(t, fake, "D7", "echo: taken, ack lost")
	eventually(t, 10*time.Second, "the plugin's ack (lost on the way)", func() bool { return fake.LostAcks() == 1 })
	fake.LoseAcks(false)
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitPlatform("slack", 20*time.Second, func(p platformStatus) bool { return p.State == "running" && p.PID != first.PID })
	eventually(t, 10*time.Second, "the redelivered envelope to be acknowledged", func() bool { return fake.Acked(env) })
	// The conversation is answered in order: once the marker is answered,
	// a second answer to the redelivered message would be posted already.
	fake.InjectMessage(fakeslack.Message{Channel: "D7", ChannelType: "im", User: "U1", Text: "marker"})
	waitSlackPosted(t, fake, "D7", "echo: marker")
	if n := fake.RetryAttempt(env); n != 1 {
		t.Fatalf("the envelope was delivered again %d times, want once: the test proved nothing", n)
	}
	if n := postedCount(fake, "taken, ack lost"); n != 1 {
		t.Fatalf("a message redelivered after a plugin restart was answered %d times, want once", n)
	}
}

// requestsStayAt checks over a few seconds that the fake sees no request
// beyond want.
func requestsStayAt(t *testing.T, fake *fakeslack.Server, want int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if n := fake.RequestCount(); n != want {
			t.Fatalf("%d requests to Slack, want %d: %+v", n, want, fake.Requests())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSlackRejectedBotTokenIsFatal(t *testing.T) {
	t.Parallel()
	fake := fakeslack.New(t)
	e := newEnv(t)
	e.install("slack", "slack")
	e.writeConfig(slackPlatform(fake, "xoxb-not-the-token", fakeslack.DefaultAppToken, ""))
	h := e.start()
	p := e.waitPlatform("slack", 20*time.Second, inState("failed"))
	if !p.Fatal || !strings.Contains(p.Error, "bot_token") || !strings.Contains(p.Error, "invalid_auth") ||
		!strings.Contains(p.Hint, "SLACK_BOT_TOKEN") {
		t.Fatalf("rejected bot token: %+v, want fatal naming bot_token and SLACK_BOT_TOKEN", p)
	}
	requestsStayAt(t, fake, 1) // the one auth.test
	if n := fake.Calls("apps.connections.open"); n != 0 {
		t.Fatalf("%d apps.connections.open calls after the bot token was rejected", n)
	}
	log := h.log.String()
	if n := strings.Count(log, "platform failed for good"); n != 1 {
		t.Fatalf("the failure was logged %d times by the host, want once", n)
	}
	if n := strings.Count(log, "giving up"); n != 1 {
		t.Fatalf("the plugin logged its failure %d times, want once", n)
	}
	if strings.Contains(log, "xoxb-not-the-token") || strings.Contains(log, fakeslack.DefaultAppToken) {
		t.Fatal("a token reached the log")
	}
}

func TestSlackRejectedAppTokenIsFatal(t *testing.T) {
	t.Parallel()
	fake := fakeslack.New(t)
	// token_expired: slack-go's socketmode would retry this one for minutes.
	fake.RevokeAppToken("token_expired")
	e := newEnv(t)
	e.install("slack", "slack")
	e.writeConfig(slackPlatform(fake, fakeslack.DefaultBotToken, fakeslack.DefaultAppToken, ""))
	e.start()
	p := e.waitPlatform("slack", 20*time.Second, inState("failed"))
	if !p.Fatal || !strings.Contains(p.Error, "app_token") || !strings.Contains(p.Error, "token_expired") ||
		!strings.Contains(p.Hint, "SLACK_APP_TOKEN") {
		t.Fatalf("rejected app token: %+v, want fatal naming app_token and SLACK_APP_TOKEN", p)
	}
	requestsStayAt(t, fake, 2) // auth.test, then the one apps.connections.open
}

func TestSlackTokenRevokedWhileRunning(t *testing.T) {
	t.Parallel()
	fake := fakeslack.New(t)
	e, _ := startSlack(t, fake, "")
	fake.RevokeBotToken("token_revoked")
	before := fake.RequestCount()

	// The revocation shows when the reply is posted: that one request,
	// then nothing more.
	fake.InjectMessage(fakeslack.Message{Channel: "D1", ChannelType: "im", User: "U1", Text: "anyone there?"})
	p := e.waitPlatform("slack", 20*time.Second, inState("failed"))
	if !p.Fatal || !strings.Contains(p.Error, "token_revoked") || !strings.Contains(p.Hint, "SLACK_BOT_TOKEN") {
		t.Fatalf("revoked bot token: %+v, want fatal naming SLACK_BOT_TOKEN", p)
	}
	eventually(t, 10*time.Second, "the Socket Mode connection to close", func() bool { return fake.OpenConnections() == 0 })
	requestsStayAt(t, fake, before+1)
}

func TestSlackAppTokenRevokedWhileRunning(t *testing.T) {
	t.Parallel()
	fake := fakeslack.New(t)
	e, _ := startSlack(t, fake, "")
	before := fake.RequestCount()
	// Slack closes the connection; reconnecting finds the token revoked.
	fake.RevokeAppToken("token_revoked")
	p := e.waitPlatform("slack", 20*time.Second, inState("failed"))
	if !p.Fatal || !strings.Contains(p.Hint, "SLACK_APP_TOKEN") {
		t.Fatalf("revoked app token: %+v, want fatal naming SLACK_APP_TOKEN", p)
	}
	requestsStayAt(t, fake, before+1)
}

func TestSlackRateLimitHonoured(t *testing.T) {
	t.Parallel()
	fake := fakeslack.New(t)
	startSlack(t, fake, "")
	fake.RateLimit("chat.postMessage", time.Second, 1)
	fake.InjectMessage(fakeslack.Message{Channel: "D1", ChannelType: "im", User: "U1", Text: "slow down"})
	waitSlackPosted(t, fake, "D1", "echo: slow down")
	if n := fake.EarlyRetries(); n != 0 {
		t.Fatalf("%d posts before Retry-After had passed", n)
	}
	if n := fake.Calls("chat.postMessage"); n != 2 {
		t.Fatalf("%d chat.postMessage calls, want 2 (the 429 and the retry)", n)
	}
}

func TestSlackLongReplySplitInThread(t *testing.T) {
	t.Parallel()
	fake := fakeslack.New(t)
	startSlack(t, fake, "")
	words := make([]string, 0, 2000)
	for i := range 2000 {
		words = append(words, fmt.Sprintf("w%d", i))
	}
	long := strings.Join(words, " ") // ~11,000 characters
	ts := fake.NewTS()
	fake.InjectMessage(fakeslack.Message{Channel: "C9", User: "U1", Text: mentionText(long), TS: ts})
	want := "echo: " + long
	var parts []fakeslack.PostedMessage
	eventually(t, 15*time.Second, "the whole reply", func() bool {
		parts = parts[:0]
		total := 0
		for _, m := range fake.Posted() {
			if m.Channel == "C9" {
				parts = append(parts, m)
				total += utf8.RuneCountInString(m.Text)
			}
		}
		return total >= len(want)-len(parts)
	})
	if len(parts) < 3 {
		t.Fatalf("%d parts, want at least 3", len(parts))
	}
	var joined []string
	for i, m := range parts {
		if n := utf8.RuneCountInString(m.Text); n > 4000 {
			t.Errorf("part %d has %d characters, over 4000", i, n)
		}
		if m.ThreadTS != ts {
			t.Errorf("part %d went to thread %q, want %q", i, m.ThreadTS, ts)
		}
		joined = append(joined, m.Text)
	}
	if got := strings.Join(joined, " "); got != want {
		t.Fatalf("the parts do not make up the reply: %d characters, want %d", len(got), len(want))
	}
}
