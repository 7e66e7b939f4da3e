package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-telegram/bot/models"
	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/plughost/gateway/plugins/telegram/faketelegram"
	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fastTiming keeps retry tests quick; the logic is the same.
var fastTiming = timing{
	backoffBase:  20 * time.Millisecond,
	backoffMax:   200 * time.Millisecond,
	stopTimeout:  1500 * time.Millisecond,
	historyGrace: time.Minute,
	chatRate:     kit.Rate{Every: 5 * time.Millisecond, Burst: 5},
}

const waitFor = 10 * time.Second

// harness is an adapter running against a fake Telegram, with a host stand-in
// that takes messages (acknowledging Deliver) when the test lets it.
type harness struct {
	t       *testing.T
	fake    *faketelegram.Server
	a       *Adapter
	events  chan shared.Event // what the host stand-in saw, Taken already answered
	runErr  chan error
	mu      sync.Mutex
	holdAck bool
	held    []shared.Event
}

func newHarness(t *testing.T, fake *faketelegram.Server, cursor string, cfg map[string]any) *harness {
	t.Helper()
	h := &harness{t: t, fake: fake, a: &Adapter{tune: fastTiming}, events: make(chan shared.Event, 256)}
	full := map[string]any{"token": faketelegram.DefaultToken, "api_url": fake.URL, "poll_timeout": "1s"}
	for k, v := range cfg {
		full[k] = v
	}
	raw, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Debug})
	if err := h.a.Configure(context.Background(), shared.Config{Raw: raw, Cursor: cursor, Logger: logger}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return h
}

// run starts Run and the host stand-in; the test's cleanup stops both.
func (h *harness) run() *harness {
	ctx, cancel := context.WithCancel(context.Background())
	in := make(chan shared.Event)
	h.runErr = make(chan error, 1)
	go func() { h.runErr <- h.a.Run(ctx, in) }()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case ev := <-in:
				h.mu.Lock()
				if ev.Message != nil && !ev.Message.IsCheckpoint() && h.holdAck {
					h.held = append(h.held, ev)
				} else {
					ev.Ack(nil)
				}
				h.mu.Unlock()
				h.events <- ev
			case <-ctx.Done():
				return
			}
		}
	}()
	h.t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer scancel()
		_ = h.a.Stop(sctx)
		cancel()
		wg.Wait()
		select {
		case <-h.runErr:
		case <-time.After(5 * time.Second):
			h.t.Error("Run did not return after Stop")
		}
	})
	return h
}

// setHoldAck makes the host stand-in keep messages without taking them
// (on), or take every held one (off).
func (h *harness) setHoldAck(on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.holdAck = on
	if !on {
		for _, ev := range h.held {
			ev.Ack(nil)
		}
		h.held = nil
	}
}

// next waits for the first event that matches, skipping others.
func (h *harness) next(what string, match func(shared.Event) bool) shared.Event {
	h.t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case ev := <-h.events:
			if match(ev) {
				return ev
			}
		case err := <-h.runErr:
			h.runErr <- err
			h.t.Fatalf("waiting for %s: Run returned %v", what, err)
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (h *harness) health(state shared.HealthState) *shared.Health {
	h.t.Helper()
	return h.next(state.String(), func(ev shared.Event) bool { return ev.Health != nil && ev.Health.State == state }).Health
}

func (h *harness) message() *shared.Message {
	h.t.Helper()
	return h.next("a message", func(ev shared.Event) bool { return ev.Message != nil && !ev.Message.IsCheckpoint() }).Message
}

// drain returns the events waiting in events.
func drain(events chan shared.Event) []shared.Event {
	var out []shared.Event
	for {
		select {
		case ev := <-events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

// runResult waits for Run to return.
func (h *harness) runResult() error {
	h.t.Helper()
	select {
	case err := <-h.runErr:
		h.runErr <- err // for the cleanup
		return err
	case <-time.After(waitFor):
		h.t.Fatal("Run did not return")
		return nil
	}
}

// testWriter shows the adapter's log with the test's output (on failure or -v).
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPrivateMessageInOffsetConfirmedOnlyOnceTaken(t *testing.T) {
	fake := faketelegram.New(t)
	h := newHarness(t, fake, "", nil).run()
	h.health(shared.Connected)
	h.setHoldAck(true)
	id := fake.Inject(faketelegram.Private(42, "hello"))
	m := h.message()
	if m.Text != "hello" || m.ConversationID != "42" || m.UserID != "42" || !m.Direct || m.ThreadID != "" {
		t.Fatalf("message = %+v", m)
	}
	if want := "42:1"; m.ID != want {
		t.Fatalf("id = %q, want %q", m.ID, want)
	}
	if m.Cursor != itoa(id+1) {
		t.Fatalf("cursor = %q, want the next offset %d", m.Cursor, id+1)
	}
	// Until the host takes it, no poll confirms it.
	polls := fake.Count("getUpdates")
	time.Sleep(50 * time.Millisecond) // give a wrong implementation the chance to poll on
	if fake.Confirmed() > id || fake.Count("getUpdates") != polls {
		t.Fatalf("confirmed %d (polls %d→%d) before the host took update %d", fake.Confirmed(), polls, fake.Count("getUpdates"), id)
	}
	h.setHoldAck(false)
	eventually(t, "the update to be confirmed", func() bool { return fake.Confirmed() == id+1 })
}

func TestCursorResumesAndHistoryIsSkippedOnFirstStart(t *testing.T) {
	old := func(text string) *models.Message {
		m := faketelegram.Private(7, text)
		m.Date = int(time.Now().Add(-time.Hour).Unix())
		return m
	}
	t.Run("first start", func(t *testing.T) {
		fake := faketelegram.New(t)
		fake.Inject(old("from yesterday"))
		fresh := fake.Inject(faketelegram.Private(7, "just now"))
		h := newHarness(t, fake, "", nil).run()
		if m := h.message(); m.Text != "just now" {
			t.Fatalf("first message answered = %q, want only the fresh one", m.Text)
		}
		eventually(t, "both confirmed", func() bool { return fake.Confirmed() == fresh+1 })
	})
	t.Run("restarted before its first message", func(t *testing.T) {
		fake := faketelegram.New(t)
		history := fake.Inject(old("from yesterday"))
		first := newHarness(t, fake, "", nil).run()
		cp := first.next("a checkpoint", func(ev shared.Event) bool { return ev.Message != nil && ev.Message.IsCheckpoint() }).Message
		if cp.Cursor != itoa(history+1) {
			t.Fatalf("checkpoint = %q, want the offset past the history, %d", cp.Cursor, history+1)
		}
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := first.a.Stop(sctx); err != nil {
			t.Fatal(err)
		}
		// Down for an hour: what was sent meanwhile is not history.
		fake.Inject(old("sent while it was down"))
		h := newHarness(t, fake, cp.Cursor, nil).run()
		if m := h.message(); m.Text != "sent while it was down" {
			t.Fatalf("message = %q, want the one sent while it was down", m.Text)
		}
		for _, ev := range drain(h.events) {
			if ev.Message != nil && ev.Message.IsCheckpoint() {
				t.Fatalf("a start with a cursor checkpointed %q", ev.Message.Cursor)
			}
		}
	})
	t.Run("with a cursor", func(t *testing.T) {
		fake := faketelegram.New(t)
		taken := fake.Inject(faketelegram.Private(7, "taken before"))
		fake.Inject(old("older but after the cursor"))
		h := newHarness(t, fake, itoa(taken+1), nil).run()
		if m := h.message(); m.Text != "older but after the cursor" {
			t.Fatalf("message = %q, want the one after the cursor", m.Text)
		}
		if r := fake.Requests(); r[1].Method != "getUpdates" || r[1].Offset != taken+1 {
			t.Fatalf("first poll = %+v, want offset %d", r[1], taken+1)
		}
	})
}

func TestBadTokenOneRequestFatal(t *testing.T) {
	for name, token := range map[string]string{"wrong": "1000001:not-the-token", "malformed": "not-a-token"} {
		t.Run(name, func(t *testing.T) {
			fake := faketelegram.New(t)
			h := newHarness(t, fake, "", map[string]any{"token": token}).run()
			err := h.runResult()
			var fe *shared.FatalError
			if !errors.As(err, &fe) || fe.Code != kit.CodeTokenRejected || !strings.Contains(fe.Hint, "TELEGRAM_TOKEN") {
				t.Fatalf("Run = %v, want a token_rejected fatal error naming TELEGRAM_TOKEN", err)
			}
			if n := fake.Count(""); n != 1 {
				t.Fatalf("%d requests with a rejected token, want exactly 1", n)
			}
			if strings.Contains(fe.Error(), token) {
				t.Fatal("the token is in the error")
			}
			// Nothing else goes out with that token either.
			if _, err := h.a.Send(context.Background(), shared.Reply{ConversationID: "1", Text: "x"}); !errors.As(err, &fe) {
				t.Fatalf("Send after rejection = %v, want the fatal error", err)
			}
			if err := h.a.Typing(context.Background(), shared.Conversation{ConversationID: "1"}); !errors.As(err, &fe) {
				t.Fatalf("Typing after rejection = %v, want the fatal error", err)
			}
			if n := fake.Count(""); n != 1 {
				t.Fatalf("%d requests after the rejection, want none", n-1)
			}
		})
	}
}

func TestTokenRevokedWhileRunning(t *testing.T) {
	fake := faketelegram.New(t)
	h := newHarness(t, fake, "", nil).run()
	h.health(shared.Connected)
	eventually(t, "a long poll", func() bool { return fake.Polling() == 1 })
	before := fake.Count("")
	fake.SetToken("1000001:rotated")
	var fe *shared.FatalError
	if err := h.runResult(); !errors.As(err, &fe) || fe.Code != kit.CodeTokenRejected {
		t.Fatalf("Run = %v, want token_rejected", err)
	}
	if extra := fake.Count("") - before; extra > 1 {
		t.Fatalf("%d requests after the token was revoked, want at most 1", extra)
	}
}

func TestSendRevokedTokenEndsRun(t *testing.T) {
	fake := faketelegram.New(t)
	h := newHarness(t, fake, "", nil).run()
	h.health(shared.Connected)
	fake.SetToken("1000001:rotated")
	var fe *shared.FatalError
	if _, err := h.a.Send(context.Background(), shared.Reply{ConversationID: "5", Text: "x"}); !errors.As(err, &fe) {
		t.Fatalf("Send = %v, want fatal", err)
	}
	if err := h.runResult(); !errors.As(err, &fe) {
		t.Fatalf("Run = %v, want fatal after Send found the token revoked", err)
	}
}

func TestConflictDegradedThenRecovers(t *testing.T) {
	fake := faketelegram.New(t)
	h := newHarness(t, fake, "", nil).run()
	h.health(shared.Connected)
	fake.SetConflict(true)
	if hl := h.health(shared.Degraded); !strings.Contains(hl.Message, "409") || !strings.Contains(hl.Message, "another process") {
		t.Fatalf("degraded reason = %q", hl.Message)
	}
	fake.Inject(faketelegram.Private(9, "sent during the conflict"))
	eventually(t, "a few polls backing off", func() bool { return fake.Count("getUpdates") >= 5 })
	fake.SetConflict(false)
	h.health(shared.Connected)
	if m := h.message(); m.Text != "sent during the conflict" {
		t.Fatalf("message = %q", m.Text)
	}
	if fake.Webhook() != "" {
		t.Fatal("webhook")
	}
}

func TestWebhookDeletedOnlyWhenConfigured(t *testing.T) {
	const hook = "https://other.example/hook/secret-path"
	t.Run("kept", func(t *testing.T) {
		fake := faketelegram.New(t)
		fake.SetWebhook(hook)
		h := newHarness(t, fake, "", nil).run()
		if hl := h.health(shared.Degraded); !strings.Contains(hl.Message, "webhook") || !strings.Contains(hl.Message, "delete_webhook") {
			t.Fatalf("degraded reason = %q, want it to name the webhook and delete_webhook", hl.Message)
		}
		eventually(t, "a retry", func() bool { return fake.Count("getUpdates") >= 3 })
		if fake.Webhook() != hook || fake.Count("deleteWebhook") != 0 {
			t.Fatal("the webhook was deleted without delete_webhook = true")
		}
	})
	t.Run("deleted", func(t *testing.T) {
		fake := faketelegram.New(t)
		fake.SetWebhook(hook)
		fake.Inject(faketelegram.Private(3, "waiting"))
		h := newHarness(t, fake, "", map[string]any{"delete_webhook": true}).run()
		h.health(shared.Connected)
		if fake.Webhook() != "" {
			t.Fatal("webhook still set")
		}
		if m := h.message(); m.Text != "waiting" {
			t.Fatalf("message = %q: deleting the webhook dropped pending updates", m.Text)
		}
	})
}

func TestTransientPollErrorsRecover(t *testing.T) {
	for name, f := range map[string]faketelegram.Failure{
		"502":           {Method: "getUpdates", Status: 502, Times: 3},
		"429":           {Method: "getUpdates", Status: 429, RetryAfter: 1, Times: 1},
		"getMe 500":     {Method: "getMe", Status: 500, Times: 2},
		"garbage 400":   {Method: "getUpdates", Status: 400, Description: "Bad Request: whatever", Times: 2},
		"not a bot api": {Method: "getUpdates", Status: 503, Times: 1},
	} {
		t.Run(name, func(t *testing.T) {
			fake := faketelegram.New(t)
			fake.Fail(f)
			fake.Inject(faketelegram.Private(3, "hi"))
			h := newHarness(t, fake, "", nil).run()
			if hl := h.health(shared.Degraded); !strings.Contains(hl.Message, itoa(int64(f.Status))) {
				t.Fatalf("degraded reason = %q, want the status", hl.Message)
			}
			h.health(shared.Connected)
			if m := h.message(); m.Text != "hi" {
				t.Fatalf("message = %q", m.Text)
			}
		})
	}
}

func TestNetworkErrorRecovers(t *testing.T) {
	fake := faketelegram.New(t)
	h := newHarness(t, fake, "", map[string]any{"api_url": "http://127.0.0.1:1"}).run()
	if hl := h.health(shared.Degraded); !strings.Contains(hl.Message, "cannot reach Telegram") {
		t.Fatalf("degraded reason = %q", hl.Message)
	}
}

func TestSendSplitsRepliesAndThreads(t *testing.T) {
	fake := faketelegram.New(t)
	h := newHarness(t, fake, "", nil).run()
	h.health(shared.Connected)
	fake.Inject(faketelegram.Topic(-100200, 17, 5, faketelegram.Mention("hi")))
	m := h.message()
	if m.ThreadID != "17" || m.ConversationID != "-100200" {
		t.Fatalf("topic message = %+v", m)
	}
	long := strings.Repeat("😀", 3000) // 6000 UTF-16 units
	ids, err := h.a.Send(context.Background(), shared.Reply{ConversationID: m.ConversationID, ThreadID: m.ThreadID, ReplyToID: m.ID, Text: long})
	if err != nil {
		t.Fatal(err)
	}
	posted := fake.Posted()
	if len(ids) != 2 || len(posted) != 2 {
		t.Fatalf("ids %v posted %d, want 2 parts", ids, len(posted))
	}
	if posted[0].Text+posted[1].Text != long {
		t.Fatal("the parts do not add up to the reply")
	}
	for i, p := range posted {
		if p.ChatID != -100200 || p.ThreadID != 17 {
			t.Fatalf("part %d went to chat %d thread %d", i, p.ChatID, p.ThreadID)
		}
	}
	_, msgID, _ := parseMessageID(m.ID)
	if posted[0].ReplyTo != msgID || posted[1].ReplyTo != 0 {
		t.Fatalf("reply_to = %d, %d; want the first part to reply to %d", posted[0].ReplyTo, posted[1].ReplyTo, msgID)
	}
	if err := h.a.Typing(context.Background(), shared.Conversation{ConversationID: "-100200", ThreadID: "17"}); err != nil {
		t.Fatal(err)
	}
	if a := fake.Actions(); len(a) != 1 || a[0] != (faketelegram.Action{ChatID: -100200, ThreadID: 17, Action: "typing"}) {
		t.Fatalf("actions = %+v", a)
	}
}

func TestRetryAfterHonouredPerChat(t *testing.T) {
	fake := faketelegram.New(t)
	h := newHarness(t, fake, "", nil)
	fake.Fail(faketelegram.Failure{Method: "sendMessage", ChatID: 1, Status: 429, RetryAfter: 1, Times: 1})
	ctx := context.Background()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := h.a.Send(ctx, shared.Reply{ConversationID: "1", Text: "slowed"})
		done <- err
	}()
	eventually(t, "the 429 to be recorded", func() bool {
		return errors.Is(h.a.budget.Wait(ctx, "1", kit.Interim), kit.ErrSkipped)
	})
	// Another chat is not held up, and chat 1 gets no typing meanwhile.
	if _, err := h.a.Send(ctx, shared.Reply{ConversationID: "2", Text: "other"}); err != nil {
		t.Fatal(err)
	}
	if err := h.a.Typing(ctx, shared.Conversation{ConversationID: "1"}); err != nil || len(fake.Actions()) != 0 {
		t.Fatalf("typing during retry-after: %v, %d actions", err, len(fake.Actions()))
	}
	if p := fake.Posted(); len(p) != 1 || p[0].ChatID != 2 {
		t.Fatalf("posted = %+v, want only chat 2's message while chat 1 waits", p)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("chat 1's message was retried after %s, before retry_after", waited)
	}
	if p := fake.Posted(); len(p) != 2 || p[1].Text != "slowed" {
		t.Fatalf("posted = %+v", p)
	}
	// A wait longer than the caller may take fails at once, clearly.
	fake.Fail(faketelegram.Failure{Method: "sendMessage", ChatID: 1, Status: 429, RetryAfter: 30, Times: 1})
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := h.a.Send(short, shared.Reply{ConversationID: "1", Text: "x"}); err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("Send with retry_after beyond its deadline = %v", err)
	}
}

// TestRunLifecycle checks the Run/Stop lifecycle the adapter takes from
// kit.Runner: one Run at a time and no Configure meanwhile, a Stop before
// Run ends that Run at once without a request, and a Run after the token
// was rejected returns the same fatal error without a request.
func TestRunLifecycle(t *testing.T) {
	ctx := context.Background()
	if err := (&Adapter{}).Run(ctx, make(chan shared.Event)); err == nil || !strings.Contains(err.Error(), "before Configure") {
		t.Fatalf("Run before Configure = %v, want an error saying so", err)
	}

	fake := faketelegram.New(t)
	h := newHarness(t, fake, "", nil).run()
	h.health(shared.Connected)
	if err := h.a.Run(ctx, make(chan shared.Event)); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("a second Run = %v, want an error saying one runs", err)
	}
	raw, _ := json.Marshal(map[string]any{"token": faketelegram.DefaultToken, "api_url": fake.URL})
	if err := h.a.Configure(ctx, shared.Config{Raw: raw}); err == nil || !strings.Contains(err.Error(), "while running") {
		t.Fatalf("Configure while running = %v, want a refusal", err)
	}

	idle := faketelegram.New(t)
	early := newHarness(t, idle, "", nil)
	if err := early.a.Stop(ctx); err != nil {
		t.Fatalf("Stop before Run: %v", err)
	}
	if err := early.a.Run(ctx, make(chan shared.Event)); err != nil {
		t.Fatalf("Run after Stop = %v, want nil at once", err)
	}
	if n := idle.Count(""); n != 0 {
		t.Fatalf("%d requests by a Run after Stop, want none", n)
	}

	refused := faketelegram.New(t)
	dead := newHarness(t, refused, "", map[string]any{"token": "1000001:not-the-token"}).run()
	fe := kit.AsFatal(dead.runResult())
	if fe == nil || fe.Code != kit.CodeTokenRejected {
		t.Fatalf("Run with a rejected token = %v, want token_rejected", fe)
	}
	if err := dead.a.Run(ctx, make(chan shared.Event)); kit.AsFatal(err) != fe {
		t.Fatalf("Run after the rejection = %v, want the same fatal error", err)
	}
	if n := refused.Count(""); n != 1 {
		t.Fatalf("%d requests with the rejected token, want exactly 1", n)
	}
}
