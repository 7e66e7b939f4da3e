package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plughost/gateway/plugins/telegram/faketelegram"
)

// telegramPlatform is a platform block for the telegram plugin against fake.
func telegramPlatform(fake *faketelegram.Server, token, extra string) string {
	return fmt.Sprintf(`
platform "telegram" {
  plugin = "telegram"
  access {
    dm = "open" # these tests are about Telegram, not pairing (access_test.go)
  }
  config {
    token        = %q
    api_url      = %q
    poll_timeout = "2s"
    %s
  }
  restart {
    initial_backoff = "50ms"
    max_backoff     = "200ms"
  }
}
`, token, fake.URL, extra)
}

// startTelegram runs a host with the telegram plugin against fake and waits
// until it is running.
func startTelegram(t *testing.T, fake *faketelegram.Server, extra string) (*env, *host) {
	t.Helper()
	e := newEnv(t)
	e.install("telegram", "telegram")
	e.writeConfig(telegramPlatform(fake, faketelegram.DefaultToken, extra))
	h := e.start()
	e.waitPlatform("telegram", 20*time.Second, inState("running"))
	return e, h
}

// waitAnswer waits for a message with text want in chat and returns it.
func waitAnswer(t *testing.T, fake *faketelegram.Server, chat int64, want string) faketelegram.Posted {
	t.Helper()
	var found faketelegram.Posted
	eventually(t, 15*time.Second, fmt.Sprintf("%q to be posted in chat %d", want, chat), func() bool {
		for _, p := range fake.Posted() {
			if p.ChatID == chat && p.Text == want {
				found = p
				return true
			}
		}
		return false
	})
	return found
}

// answers counts the messages with text want posted in chat.
func answers(fake *faketelegram.Server, chat int64, want string) int {
	n := 0
	for _, p := range fake.Posted() {
		if p.ChatID == chat && p.Text == want {
			n++
		}
	}
	return n
}

// settle sends a last message in chat and waits for its answer: the chat is
// one session, answered in order, so whatever was queued before it (a
// duplicate included) has been answered by then.
func settle(t *testing.T, fake *faketelegram.Server, chat int64) {
	t.Helper()
	fake.Inject(faketelegram.Private(chat, "sentinel"))
	waitAnswer(t, fake, chat, "echo: sentinel")
}

func TestTelegramPrivateGroupsTopicsAndCommands(t *testing.T) {
	t.Parallel()
	fake := faketelegram.New(t)
	startTelegram(t, fake, "")

	in := faketelegram.Private(42, "hello there")
	fake.Inject(in)
	if p := waitAnswer(t, fake, 42, "echo: hello there"); p.ReplyTo != in.ID {
		t.Errorf("the answer replies to message %d, want %d", p.ReplyTo, in.ID)
	}

	// In a group: not without a mention; with one, a reply to the bot, or
	// a command addressed to it.
	fake.Inject(faketelegram.Group(-1001, 7, "just chatting"))
	fake.Inject(faketelegram.Group(-1001, 7, faketelegram.Mention("in the group")))
	first := waitAnswer(t, fake, -1001, "echo: in the group")
	fake.Inject(faketelegram.ReplyTo(faketelegram.Group(-1001, 7, "a reply"), first))
	waitAnswer(t, fake, -1001, "echo: a reply")
	fake.Inject(faketelegram.Group(-1001, 7, "/new@"+faketelegram.BotUsername))
	waitAnswer(t, fake, -1001, "Started a new session.")
	if n := answers(fake, -1001, "echo: just chatting"); n != 0 {
		t.Fatal("answered a group message that did not address the bot")
	}

	// A forum topic is its own conversation and the answer goes to it.
	fake.Inject(faketelegram.Topic(-1002, 33, 7, faketelegram.Mention("in a topic")))
	if p := waitAnswer(t, fake, -1002, "echo: in a topic"); p.ThreadID != 33 {
		t.Fatalf("topic answer went to thread %d, want 33", p.ThreadID)
	}

	// A reply longer than 4096 UTF-16 units comes in parts, the first one
	// replying to the user.
	long := strings.Repeat("ж", 4090) + " " + strings.Repeat("😀", 20)
	msg := faketelegram.Private(43, long)
	fake.Inject(msg)
	eventually(t, 15*time.Second, "the long answer in two parts", func() bool {
		n := 0
		for _, p := range fake.Posted() {
			if p.ChatID == 43 {
				n++
			}
		}
		return n == 2
	})
	var parts []faketelegram.Posted
	for _, p := range fake.Posted() {
		if p.ChatID == 43 {
			parts = append(parts, p)
		}
	}
	if parts[0].ReplyTo != msg.ID || parts[1].ReplyTo != 0 {
		t.Fatalf("reply_to of the parts = %d, %d; want %d, 0", parts[0].ReplyTo, parts[1].ReplyTo, msg.ID)
	}
	if got := parts[0].Text + " " + parts[1].Text; got != "echo: "+long {
		t.Fatalf("the parts do not add up to the reply (%d + %d chars)", len(parts[0].Text), len(parts[1].Text))
	}
}

func TestTelegramTypingWhileTheAgentWorks(t *testing.T) {
	t.Parallel()
	ai := newFakeOpenAI(t)
	fake := faketelegram.New(t)
	e := newEnv(t)
	e.install("telegram", "telegram")
	e.writeConfig(openAIConfig(ai, "sk-test-key", "") + telegramPlatform(fake, faketelegram.DefaultToken, ""))
	e.start()
	e.waitPlatform("telegram", 20*time.Second, inState("running"))

	fake.Inject(faketelegram.Topic(-1003, 5, 7, faketelegram.Mention("slow 1500")))
	waitAnswer(t, fake, -1003, "turns=1 last=slow 1500")
	a := fake.Actions()
	if len(a) == 0 || a[0] != (faketelegram.Action{ChatID: -1003, ThreadID: 5, Action: "typing"}) {
		t.Fatalf("chat actions = %+v, want typing in the topic", a)
	}
}

func TestTelegramBadTokenOneRequestAndFailed(t *testing.T) {
	t.Parallel()
	fake := faketelegram.New(t)
	e := newEnv(t)
	e.install("telegram", "telegram")
	e.install("http", "http")
	web := freeAddr(t)
	const bad = "1000001:revoked-long-ago"
	e.writeConfig(telegramPlatform(fake, bad, "") + httpPlatform("web", web, ""))
	h := e.start()
	p := e.waitPlatform("telegram", 20*time.Second, inState("failed"))
	if !p.Fatal || !strings.Contains(p.Error, "rejected the bot token") || !strings.Contains(p.Hint, "TELEGRAM_TOKEN") {
		t.Fatalf("bad token: %+v, want fatal, with a hint naming TELEGRAM_TOKEN", p)
	}
	// Over a few seconds (the restart backoff is 50 ms) nothing moves.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		st, _ := e.status()
		if q, _ := st.platform("telegram"); q.State != "failed" || q.Restarts != 0 {
			t.Fatalf("failed platform moved: %+v", q)
		}
		if code, body := post(t, web, `{"session":"w","text":"ok"}`); code != 200 || body["reply"] != "echo: ok" {
			t.Fatalf("the other platform stopped serving: %d %v", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := fake.Count(""); n != 1 {
		t.Fatalf("%d requests with a rejected token, want exactly 1: %+v", n, fake.Requests())
	}
	// One log line says it all: the host's, with the error and the hint.
	if n := strings.Count(h.log.String(), "rejected the bot token"); n != 1 {
		t.Fatalf("the rejection was logged %d times, want once", n)
	}
	if n := strings.Count(h.log.String(), "platform failed for good"); n != 1 {
		t.Fatalf("the failure was logged %d times, want once", n)
	}
	if strings.Contains(h.log.String(), bad) {
		t.Fatal("the token reached the log")
	}
}

func TestTelegramTokenRevokedWhileRunning(t *testing.T) {
	t.Parallel()
	fake := faketelegram.New(t)
	e, _ := startTelegram(t, fake, "")
	eventually(t, 10*time.Second, "a long poll", func() bool { return fake.Polling() == 1 })
	before := fake.Count("")
	fake.SetToken("1000001:rotated")
	p := e.waitPlatform("telegram", 15*time.Second, inState("failed"))
	if !p.Fatal || !strings.Contains(p.Hint, "TELEGRAM_TOKEN") {
		t.Fatalf("revoked token: %+v, want fatal naming TELEGRAM_TOKEN", p)
	}
	if extra := fake.Count("") - before; extra > 1 {
		t.Fatalf("%d requests after the token was revoked, want at most 1", extra)
	}
}

func TestTelegramConflictDegradedThenRecoversAnsweringOnce(t *testing.T) {
	t.Parallel()
	fake := faketelegram.New(t)
	e, _ := startTelegram(t, fake, "")

	fake.SetConflict(true)
	p := e.waitPlatform("telegram", 10*time.Second, inState("degraded"))
	if !strings.Contains(p.Error, "409") {
		t.Fatalf("degraded: %+v, want the 409 as the reason", p)
	}
	for _, text := range []string{"during one", "during two"} {
		fake.Inject(faketelegram.Private(50, text))
	}
	// It backs off rather than spinning: a few polls over a few seconds.
	polls := fake.Count("getUpdates")
	time.Sleep(3 * time.Second) // the conflict lasts a while
	if n := fake.Count("getUpdates") - polls; n > 10 {
		t.Fatalf("%d polls in 3s of conflict: not backing off", n)
	}
	fake.SetConflict(false)
	e.waitPlatform("telegram", 20*time.Second, inState("running"))
	waitAnswer(t, fake, 50, "echo: during one")
	waitAnswer(t, fake, 50, "echo: during two")
	settle(t, fake, 50)
	for _, text := range []string{"echo: during one", "echo: during two"} {
		if n := answers(fake, 50, text); n != 1 {
			t.Fatalf("%q answered %d times, want once", text, n)
		}
	}
	if fake.Count("deleteWebhook") != 0 {
		t.Fatal("deleteWebhook called without delete_webhook = true")
	}
}

func TestTelegramWebhookDeletedOnlyWhenConfigured(t *testing.T) {
	t.Parallel()
	const hook = "https://elsewhere.example/hook"
	fake := faketelegram.New(t)
	fake.SetWebhook(hook)
	e := newEnv(t)
	e.install("telegram", "telegram")
	e.writeConfig(telegramPlatform(fake, faketelegram.DefaultToken, ""))
	e.start()
	p := e.waitPlatform("telegram", 20*time.Second, inState("degraded"))
	if !strings.Contains(p.Error, "webhook") || !strings.Contains(p.Error, "delete_webhook") {
		t.Fatalf("degraded: %+v, want a reason naming the webhook and delete_webhook", p)
	}
	if fake.Webhook() != hook {
		t.Fatal("the webhook was deleted without delete_webhook = true")
	}

	fake2 := faketelegram.New(t)
	fake2.SetWebhook(hook)
	fake2.Inject(faketelegram.Private(60, "queued behind the webhook"))
	startTelegram(t, fake2, "delete_webhook = true")
	waitAnswer(t, fake2, 60, "echo: queued behind the webhook")
	if fake2.Webhook() != "" {
		t.Fatal("webhook still set with delete_webhook = true")
	}
}

func TestTelegramRetryAfterHonouredForThatChat(t *testing.T) {
	t.Parallel()
	fake := faketelegram.New(t)
	startTelegram(t, fake, "")
	fake.Fail(faketelegram.Failure{Method: "sendMessage", ChatID: 70, Status: 429, RetryAfter: 2, Times: 1})
	fake.Inject(faketelegram.Private(70, "limited"))
	eventually(t, 10*time.Second, "the 429", func() bool { return fake.Count("sendMessage") == 1 })
	fake.Inject(faketelegram.Private(71, "not limited"))
	waitAnswer(t, fake, 71, "echo: not limited")
	waitAnswer(t, fake, 70, "echo: limited")
	// Chat 71 was not held up behind chat 70's wait.
	if p := fake.Posted(); len(p) != 2 || p[0].ChatID != 71 || p[1].ChatID != 70 {
		t.Fatalf("posted = %+v, want chat 71's answer first", p)
	}
	var sends []faketelegram.Request
	for _, r := range fake.Requests() {
		if r.Method == "sendMessage" {
			sends = append(sends, r)
		}
	}
	// The 429, chat 71's answer, then chat 70's retry.
	if len(sends) != 3 {
		t.Fatalf("%d sendMessage requests, want 3", len(sends))
	}
	if gap := sends[2].At.Sub(sends[0].At); gap < 2*time.Second {
		t.Fatalf("chat 70 retried after %s, before its retry_after (2s)", gap)
	}
}

func TestTelegramServerErrorsRecover(t *testing.T) {
	t.Parallel()
	fake := faketelegram.New(t)
	e, _ := startTelegram(t, fake, "")
	fake.Fail(faketelegram.Failure{Method: "getUpdates", Status: 502})
	p := e.waitPlatform("telegram", 10*time.Second, inState("degraded"))
	if !strings.Contains(p.Error, "502") {
		t.Fatalf("degraded: %+v, want the 502 as the reason", p)
	}
	fake.Inject(faketelegram.Private(80, "while Telegram was down"))
	fake.ClearFailures()
	e.waitPlatform("telegram", 20*time.Second, inState("running"))
	waitAnswer(t, fake, 80, "echo: while Telegram was down")
}

func TestTelegramHistoryBeforeFirstStartNotAnswered(t *testing.T) {
	t.Parallel()
	fake := faketelegram.New(t)
	old := faketelegram.Private(90, "from yesterday")
	old.Date = int(time.Now().Add(-24 * time.Hour).Unix())
	oldID := fake.Inject(old)
	startTelegram(t, fake, "")
	settle(t, fake, 90)
	if answers(fake, 90, "echo: from yesterday") != 0 {
		t.Fatal("answered a message from before the bot first started")
	}
	if fake.Confirmed() <= oldID {
		t.Fatal("the skipped history was not confirmed")
	}
}

func TestTelegramPluginKilledWithUpdatesPendingAnswersEachOnce(t *testing.T) {
	t.Parallel()
	fake := faketelegram.New(t)
	e, _ := startTelegram(t, fake, "")
	beforeID := fake.Inject(faketelegram.Private(100, "before"))
	waitAnswer(t, fake, 100, "echo: before")
	eventually(t, 10*time.Second, "the answered update to be confirmed", func() bool { return fake.Confirmed() > beforeID })
	first := e.waitPlatform("telegram", 10*time.Second, inState("running"))

	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	texts := []string{"pending one", "pending two", "pending three"}
	for _, text := range texts {
		fake.Inject(faketelegram.Private(100, text))
	}
	e.waitPlatform("telegram", 20*time.Second, func(p platformStatus) bool {
		return p.State == "running" && p.PID != first.PID
	})
	for _, text := range texts {
		waitAnswer(t, fake, 100, "echo: "+text)
	}
	settle(t, fake, 100)
	for _, text := range append(texts, "before") {
		if n := answers(fake, 100, "echo: "+text); n != 1 {
			t.Fatalf("%q answered %d times, want once", text, n)
		}
	}
}

// The hard case: the plugin handed a message to the host, which answered it,
// and was killed before its next poll confirmed the update, so Telegram
// would send it again. Only the host knows it was taken: it persists the
// cursor (Message.Cursor, the next offset) with the message and hands it
// back as Config.Cursor, so the restarted plugin confirms the update with
// its first poll; and it drops ids it already took.
func TestTelegramPluginKilledBeforeConfirmingAnswersOnce(t *testing.T) {
	t.Parallel()
	fake := faketelegram.New(t)
	e, _ := startTelegram(t, fake, "")
	first := e.waitPlatform("telegram", 10*time.Second, inState("running"))
	// Hold only the polls after the one that brings the message: a poll
	// held before it would never bring it.
	eventually(t, 10*time.Second, "a long poll", func() bool { return fake.Polling() == 1 })
	fake.HoldPolls(true)
	polls := fake.Count("getUpdates")
	id := fake.Inject(faketelegram.Private(110, "taken, not confirmed"))
	waitAnswer(t, fake, 110, "echo: taken, not confirmed")
	eventually(t, 10*time.Second, "the confirming poll to hang", func() bool { return fake.Count("getUpdates") > polls })
	before := len(fake.Requests()) // the old plugin's last poll hangs: it makes no more
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if fake.Confirmed() > id {
		t.Fatal("the update was confirmed before the kill: the test proves nothing")
	}
	fake.HoldPolls(false)
	e.waitPlatform("telegram", 20*time.Second, func(p platformStatus) bool {
		return p.State == "running" && p.PID != first.PID
	})
	settle(t, fake, 110)
	if n := answers(fake, 110, "echo: taken, not confirmed"); n != 1 {
		t.Fatalf("answered %d times, want once", n)
	}
	for _, r := range fake.Requests()[before:] {
		if r.Method == "getUpdates" {
			if r.Offset <= id {
				t.Fatalf("the restarted plugin polled from offset %d, want past update %d: the host did not hand back the cursor", r.Offset, id)
			}
			break
		}
	}
}

// TestTelegramPluginKilledBeforeItsFirstAnswer: the first start
// checkpoints its offset with the host, so a plugin killed before it ever
// handed over a message is not taken for a first start again: a message
// sent while it was down is answered once, even one older than the first
// start's history grace (the plugin was down a long time), and history
// from before the first start never is.
func TestTelegramPluginKilledBeforeItsFirstAnswer(t *testing.T) {
	t.Parallel()
	fake := faketelegram.New(t)
	history := faketelegram.Private(120, "from yesterday")
	history.Date = int(time.Now().Add(-24 * time.Hour).Unix())
	fake.Inject(history)
	e, _ := startTelegram(t, fake, "")
	first := e.waitPlatform("telegram", 10*time.Second, inState("running"))
	// The plugin polls again only once the host recorded its checkpoint.
	eventually(t, 10*time.Second, "the poll after the checkpoint", func() bool { return fake.Count("getUpdates") >= 2 })
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	meanwhile := faketelegram.Private(120, "sent while it was down")
	meanwhile.Date = int(time.Now().Add(-time.Hour).Unix())
	fake.Inject(meanwhile)
	e.waitPlatform("telegram", 20*time.Second, func(p platformStatus) bool {
		return p.State == "running" && p.PID != first.PID
	})
	waitAnswer(t, fake, 120, "echo: sent while it was down")
	settle(t, fake, 120)
	if n := answers(fake, 120, "echo: sent while it was down"); n != 1 {
		t.Fatalf("answered %d times, want once", n)
	}
	if n := answers(fake, 120, "echo: from yesterday"); n != 0 {
		t.Fatalf("history from before the first start was answered %d times", n)
	}
}
