package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plughost/gateway/host/provider/providertest"
	"github.com/plughost/gateway/plugins/discord/fakediscord"
)

// A 5 MB reply used to be committed, then fail Send with ResourceExhausted
// (the plugin's gRPC server kept the 4 MiB default) while the HTTP client
// waited 120 s. Now the agent cuts it at max_reply_bytes (here the largest
// allowed, 4 MiB, which crosses the plugin protocol only because both ends
// agree on its limit) and the client gets it at once.
func TestHugeReplyIsCutAtMaxReplyBytesAndDelivered(t *testing.T) {
	t.Parallel()
	ai := newFakeOpenAI(t)
	huge := strings.Repeat("0123456789 abcdefghi\n", 250_000) // 5.25 MB
	ai.Reply = func(*providertest.Request) string { return huge }
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(strings.Replace(openAIConfig(ai, "sk-test-key", ""), "history_limit = 40",
		"history_limit = 40\n  max_reply_bytes = 4194304", 1) + httpPlatform("web", web, `timeout = "60s"`))
	h := e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	start := time.Now()
	code, body := post(t, web, `{"session":"big","text":"write a lot"}`)
	took := time.Since(start)
	reply, _ := body["reply"].(string)
	if code != 200 {
		t.Fatalf("POST: %d %v", code, body["error"])
	}
	if len(reply) > 4194304 || len(reply) < 4000000 {
		t.Errorf("reply is %d bytes; want cut just under max_reply_bytes (4194304)", len(reply))
	}
	if !strings.HasPrefix(reply, huge[:1000]) || !strings.Contains(reply, "[Reply cut: it was 5250000 bytes") {
		t.Errorf("reply does not start with the provider's text and end with the note: ...%q", reply[max(0, len(reply)-200):])
	}
	t.Logf("4 MiB reply delivered in %s", took)
	log := h.log.String()
	if strings.Contains(log, "ResourceExhausted") || strings.Contains(log, "could not deliver") {
		t.Error("delivery failed somewhere (see log)")
	}
	if !strings.Contains(log, "reply cut at max_reply_bytes") {
		t.Error("the cut was not logged")
	}
	// The next turn sends the cut reply as history, not 5 MB.
	if code, _ := post(t, web, `{"session":"big","text":"again"}`); code != 200 {
		t.Fatalf("second turn: %d", code)
	}
	for _, m := range ai.LastRequest().Messages {
		if len(m.Content) > 4194304 {
			t.Fatalf("history carries a %d-byte message", len(m.Content))
		}
	}
}

// discordStorm runs the host with the discord plugin against fake and
// checks, while until is false, that the platform is never failed.
type discordStorm struct {
	t    *testing.T
	e    *env
	fake *fakediscord.Server
}

func startDiscordStorm(t *testing.T, fake *fakediscord.Server) *discordStorm {
	e := newEnv(t)
	e.install("discord", "discord")
	e.writeConfig(discordPlatform(fake, fakediscord.DefaultToken))
	e.start()
	return &discordStorm{t: t, e: e, fake: fake}
}

func (d *discordStorm) neverFailedUntil(within time.Duration, until func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for !until() {
		st, _ := d.e.status()
		if p, ok := st.platform("discord"); ok && (p.State == "failed" || p.Fatal) {
			d.t.Fatalf("the op 7 storm failed the platform: %+v", p)
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("not done within %s", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *discordStorm) running() bool {
	st, _ := d.e.status()
	p, _ := st.platform("discord")
	return p.State == "running" && d.fake.Connections() == 1
}

// A gateway answering IDENTIFY with op 7 spent the identify budget in 20 ms
// and failed the platform for good; now each op 7 after the first backs off.
func TestDiscordReconnectBeforeReadyNeverFailsThePlatform(t *testing.T) {
	t.Parallel()
	fake := fakediscord.New(t)
	fake.SetReconnectOnIdentify(4)
	d := startDiscordStorm(t, fake)
	d.neverFailedUntil(60*time.Second, d.running)
	if n := fake.Identifies(); n != 5 {
		t.Errorf("identifies = %d; want 5 (four answered with op 7, then READY)", n)
	}
	fake.InjectMessage(mention("C1", "still there?"))
	waitPosted(t, fake, "C1", "echo: still there?")
}

// Op 7 after every RESUMED made 5,207 reconnects in 3 s; the backoff (1 s
// doubling) allows a few, each one a RESUME.
func TestDiscordReconnectAfterResumeStormIsPaced(t *testing.T) {
	t.Parallel()
	fake := fakediscord.New(t)
	d := startDiscordStorm(t, fake)
	d.neverFailedUntil(20*time.Second, d.running)
	fake.SetReconnectAfterResume(true)
	fake.RequestReconnect()
	window := time.Now().Add(5 * time.Second)
	d.neverFailedUntil(10*time.Second, func() bool { return time.Now().After(window) })
	fake.SetReconnectAfterResume(false)
	if n := fake.Resumes(); n < 2 || n > 10 {
		t.Errorf("resumes in the 5 s storm = %d; want a few (2..10)", n)
	}
	if n := fake.Identifies(); n != 1 {
		t.Errorf("identifies = %d; want 1 (op 7 is answered with RESUME)", n)
	}
	fake.RequestReconnect()
	d.neverFailedUntil(90*time.Second, d.running)
	fake.InjectMessage(mention("C1", "still there?"))
	waitPosted(t, fake, "C1", "echo: still there?")
}

// A channel whose send route is rate limited for 60 s, and one where the
// bot lacks permissions: the log says which, in words the operator can act
// on, and neither holds up other channels.
func TestDiscordUndeliverableRepliesAreExplained(t *testing.T) {
	t.Parallel()
	fake := fakediscord.New(t)
	e := newEnv(t)
	e.install("discord", "discord")
	// The whole-reply Send path (stream_replies = false, the default) is
	// what this test is about.
	e.writeConfig(discordPlatform(fake, fakediscord.DefaultToken))
	h := e.start()
	e.waitPlatform("discord", 20*time.Second, inState("running"))

	fake.SetRESTStatus("/channels/C403/messages", 403)
	fake.InjectMessage(mention("C403", "hello"))
	eventually(t, 10*time.Second, "the 403 to be logged", func() bool {
		return strings.Contains(h.log.String(), "Missing Permissions")
	})
	if !strings.Contains(h.log.String(), "give the bot View Channel and Send Messages") {
		t.Error("the 403 log line does not say what to fix")
	}

	fake.RateLimit(1, 60*time.Second)
	start := time.Now()
	fake.InjectMessage(mention("C2", "are you there"))
	eventually(t, 40*time.Second, "the rate limit to be logged", func() bool {
		return strings.Contains(h.log.String(), "rate limited by Discord for 60 s")
	})
	if d := time.Since(start); d > 35*time.Second {
		t.Errorf("the rate limit was reported after %s", d)
	}
	fake.InjectMessage(mention("C3", "other channel"))
	waitPosted(t, fake, "C3", "echo: other channel")
}

// The pool case scaled down: 20 sessions at once, a provider that
// takes 300 ms, max_connections = 2 and a timeout of 1 s. The queue takes
// 3 s, but waiting for a connection is not the provider's time: every
// answer arrives in time and is used, and /metrics shows the wait.
func TestSlowProviderBehindSmallPoolAnswersEverySession(t *testing.T) {
	t.Parallel()
	ai := newFakeOpenAI(t)
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(openAIConfig(ai, "sk-test-key", `timeout = "1s"
  max_connections = 2`) + httpPlatform("web", web, ""))
	e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	const sessions = 20
	var wg sync.WaitGroup
	got := make([]string, sessions)
	for i := range sessions {
		wg.Go(func() {
			code, body := post(t, web, fmt.Sprintf(`{"session":"s%d","text":"slow 300"}`, i))
			got[i] = fmt.Sprintf("%d %v", code, body["reply"])
		})
	}
	wg.Wait()
	for i, g := range got {
		if g != "200 turns=1 last=slow 300" {
			t.Errorf("session %d: %s", i, g)
		}
	}
	if n := ai.Served(); n != sessions {
		t.Errorf("provider saw %d requests; want %d (nothing retried)", n, sessions)
	}
	_, metrics := get(t, "http://"+e.admin+"/metrics")
	for _, want := range []string{`gateway_provider_conn_waiting{provider="openai"} 0`, `gateway_provider_conn_waits_total{provider="openai"} 20`,
		`gateway_provider_conn_wait_seconds_total{provider="openai"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// "agent failed" used to log only the user's text at info level; the
// status, the provider's message and the attempts were at debug.
func TestAgentFailureLogsItsCause(t *testing.T) {
	t.Parallel()
	ai := newFakeOpenAI(t)
	overloaded := providertest.Scripted{Status: 503, Body: `{"error":{"message":"The engine is overloaded"}}`}
	ai.Script(overloaded, overloaded, overloaded, overloaded)
	e := newEnv(t)
	e.logLevel = "info"
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(openAIConfig(ai, "sk-test-key", "") + httpPlatform("web", web, ""))
	h := e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	post(t, web, `{"session":"x","text":"hi"}`)
	eventually(t, 10*time.Second, "agent failed to be logged", func() bool {
		return strings.Contains(h.log.String(), "agent failed")
	})
	var line string
	for _, l := range strings.Split(h.log.String(), "\n") {
		if strings.Contains(l, "agent failed") {
			line = l
		}
	}
	for _, want := range []string{"[WARN]", "status=503", "provider_message=\"The engine is overloaded\"", "attempts=4", "kind=unavailable"} {
		if !strings.Contains(line, want) {
			t.Errorf("agent failed line lacks %s: %s", want, line)
		}
	}
	if strings.Contains(h.log.String(), "sk-test-key") {
		t.Error("the API key reached the log")
	}
}
