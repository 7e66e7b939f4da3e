package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plughost/gateway/plugins/slack/fakeslack"
	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fastTiming keeps reconnect tests quick; the logic is the same.
var fastTiming = timing{
	openTimeout: 2 * time.Second,
	pingTimeout: time.Second,
	backoffBase: 20 * time.Millisecond,
	backoffMax:  200 * time.Millisecond,
	stableAfter: time.Second,
	stopTimeout: 1500 * time.Millisecond,
	httpTimeout: 5 * time.Second,
	channelRate: kit.Rate{Every: time.Millisecond, Burst: 100},
}

const waitFor = 10 * time.Second

// harness runs an Adapter in-process against a fake Slack, reading its
// events directly, so a test decides when (and whether) the host takes a
// message.
type harness struct {
	t      *testing.T
	fake   *fakeslack.Server
	a      *Adapter
	events chan shared.Event
	runErr chan error
}

func newHarness(t *testing.T, fake *fakeslack.Server, cfg map[string]any) *harness {
	t.Helper()
	h := &harness{t: t, fake: fake, a: &Adapter{tune: fastTiming}, events: make(chan shared.Event, 256)}
	full := map[string]any{"bot_token": fakeslack.DefaultBotToken, "app_token": fakeslack.DefaultAppToken, "api_url": fake.APIURL}
	for k, v := range cfg {
		full[k] = v
	}
	raw, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.a.Configure(context.Background(), shared.Config{Raw: raw}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return h
}

// run starts Run; the test's cleanup stops it.
func (h *harness) run() *harness {
	ctx, cancel := context.WithCancel(context.Background())
	h.runErr = make(chan error, 1)
	go func() { h.runErr <- h.a.Run(ctx, h.events) }()
	h.t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer scancel()
		_ = h.a.Stop(sctx)
		cancel()
		select {
		case <-h.runErr:
		case <-time.After(5 * time.Second):
			h.t.Error("Run did not return after Stop")
		}
	})
	return h
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
			ev.Ack(nil)
		case err := <-h.runErr:
			h.runErr <- err
			h.t.Fatalf("waiting for %s: Run returned %v", what, err)
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (h *harness) health(state shared.HealthState) shared.Event {
	h.t.Helper()
	return h.next(state.String(), func(ev shared.Event) bool { return ev.Health != nil && ev.Health.State == state })
}

// message waits for a message event, leaving it for the test to Ack.
func (h *harness) message() shared.Event {
	h.t.Helper()
	return h.next("a message", func(ev shared.Event) bool { return ev.Message != nil })
}

func (h *harness) fatal(wantCode string) *shared.FatalError {
	h.t.Helper()
	var err error
	select {
	case err = <-h.runErr:
		h.runErr <- err // for the cleanup
	case <-time.After(waitFor):
		h.t.Fatal("Run did not return")
	}
	var fe *shared.FatalError
	if !errors.As(err, &fe) {
		h.t.Fatalf("Run returned %v (%T), want a *shared.FatalError", err, err)
	}
	if fe.Code != wantCode {
		h.t.Fatalf("fatal code = %q (%v), want %q", fe.Code, fe, wantCode)
	}
	return fe
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dm(text string) fakeslack.Message {
	return fakeslack.Message{Channel: "D1", ChannelType: "im", User: "U1", Text: text}
}

func TestEnvelopeAckedOnlyOnceTaken(t *testing.T) {
	fake := fakeslack.New(t)
	h := newHarness(t, fake, nil).run()
	h.health(shared.Connected)

	in := dm("hello")
	in.TS = "1700000000.000123"
	env := fake.InjectMessage(in)
	ev := h.message()
	want := shared.Message{ID: "D1/1700000000.000123", ConversationID: "D1", UserID: "U1",
		Direct: true, Text: "hello", UnixNano: 1700000000_000123000}
	if *ev.Message != want {
		t.Fatalf("message = %+v, want %+v", *ev.Message, want)
	}
	// The host has not taken it: no ack, however long we look.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if fake.Acked(env) {
			t.Fatal("the envelope was acknowledged before the host took the message")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The host could not take it: still no ack; the connection is
	// replaced and Slack delivers the envelope again.
	ev.Ack(errors.New("host went away"))
	h.health(shared.Degraded)
	again := h.message()
	if again.Message.ID != ev.Message.ID {
		t.Fatalf("redelivered message id %q, want %q", again.Message.ID, ev.Message.ID)
	}
	if fake.Acked(env) {
		t.Fatal("acknowledged a message the host did not take")
	}
	again.Ack(nil)
	eventually(t, "the ack", func() bool { return fake.Acked(env) })
	if n := fake.MaxOpenConnections(); n != 1 {
		t.Fatalf("%d connections open at once, want 1", n)
	}
}

func TestSilentConnectionIsReplaced(t *testing.T) {
	fake := fakeslack.New(t)
	h := newHarness(t, fake, nil).run()
	h.health(shared.Connected)
	fake.SetPings(false)
	d := h.health(shared.Degraded)
	if !strings.Contains(d.Health.Message, "stale") {
		t.Errorf("degraded because %q, want a stale connection", d.Health.Message)
	}
	fake.SetPings(true)
	h.health(shared.Connected)
	if fake.Opened() < 2 || fake.MaxOpenConnections() != 1 {
		t.Fatalf("opened %d, at most %d at once; want a replacement and never two", fake.Opened(), fake.MaxOpenConnections())
	}
	fake.InjectMessage(dm("still there?"))
	h.message().Ack(nil)
}

func TestRefreshReplacesConnection(t *testing.T) {
	fake := fakeslack.New(t)
	h := newHarness(t, fake, nil).run()
	h.health(shared.Connected)
	for i := range 3 {
		fake.Disconnect("refresh_requested")
		h.health(shared.Degraded)
		h.health(shared.Connected)
		if n := fake.Opened(); n != i+2 {
			t.Fatalf("after refresh %d: %d connections opened, want %d", i+1, n, i+2)
		}
	}
	env := fake.InjectMessage(dm("after the refreshes"))
	h.message().Ack(nil)
	eventually(t, "the ack", func() bool { return fake.Acked(env) })
	if n := fake.MaxOpenConnections(); n != 1 {
		t.Fatalf("%d connections open at once, want 1 (Slack would send events to the stale one)", n)
	}
}

func TestTransientOpenErrorsRetry(t *testing.T) {
	faults := map[string]struct{ set, clear func(*fakeslack.Server) }{
		"internal_error": {
			func(s *fakeslack.Server) { s.SetMethodError("apps.connections.open", "internal_error") },
			func(s *fakeslack.Server) { s.SetMethodError("apps.connections.open", "") }},
		"HTTP 503": {
			func(s *fakeslack.Server) { s.SetHTTPStatus("apps.connections.open", 503) },
			func(s *fakeslack.Server) { s.SetHTTPStatus("apps.connections.open", 0) }},
		"auth.test HTTP 500": {
			func(s *fakeslack.Server) { s.SetHTTPStatus("auth.test", 500) },
			func(s *fakeslack.Server) { s.SetHTTPStatus("auth.test", 0) }},
	}
	for name, f := range faults {
		t.Run(name, func(t *testing.T) {
			fake := fakeslack.New(t)
			f.set(fake)
			h := newHarness(t, fake, nil).run()
			h.health(shared.Degraded)
			eventually(t, "a few retries", func() bool { return fake.RequestCount() >= 3 })
			f.clear(fake)
			h.health(shared.Connected)
			if n := fake.Calls("auth.test"); name != "auth.test HTTP 500" && n != 1 {
				t.Fatalf("auth.test called %d times, want once", n)
			}
		})
	}
}

func TestFatalErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*fakeslack.Server)
		// after runs once connected, when set.
		after    func(*fakeslack.Server)
		apiPath  string // replaces /api/ in api_url, when set
		code     string
		contains string
	}{
		{name: "bot token not_allowed_token_type", code: kit.CodeTokenRejected, contains: "SLACK_BOT_TOKEN",
			setup: func(s *fakeslack.Server) { s.SetMethodError("auth.test", "not_allowed_token_type") }},
		{name: "app token not_allowed_token_type", code: kit.CodeTokenRejected, contains: "SLACK_APP_TOKEN",
			setup: func(s *fakeslack.Server) { s.SetMethodError("apps.connections.open", "not_allowed_token_type") }},
		{name: "app token account_inactive", code: kit.CodeTokenRejected, contains: "SLACK_APP_TOKEN",
			setup: func(s *fakeslack.Server) { s.RevokeAppToken("account_inactive") }},
		{name: "app token missing connections:write", code: CodeMissingScope, contains: "connections:write",
			setup: func(s *fakeslack.Server) { s.SetMethodError("apps.connections.open", "missing_scope") }},
		{name: "api_url answers 404", code: CodeAPINotFound, contains: "api_url", apiPath: "/not-the-api/"},
		{name: "socket mode turned off", code: CodeSocketMode, contains: "Socket Mode",
			after: func(s *fakeslack.Server) { s.Disconnect("link_disabled") }},
		{name: "tokens_revoked event", code: kit.CodeTokenRejected, contains: "SLACK_BOT_TOKEN",
			after: func(s *fakeslack.Server) {
				s.InjectEvent(map[string]any{"type": "tokens_revoked", "tokens": map[string]any{"bot": []string{fakeslack.BotUserID}}})
			}},
		{name: "app_uninstalled event", code: CodeUninstalled, contains: "reinstall",
			after: func(s *fakeslack.Server) { s.InjectEvent(map[string]any{"type": "app_uninstalled"}) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := fakeslack.New(t)
			if tc.setup != nil {
				tc.setup(fake)
			}
			var cfg map[string]any
			if tc.apiPath != "" {
				cfg = map[string]any{"api_url": fake.URL + tc.apiPath}
			}
			h := newHarness(t, fake, cfg).run()
			if tc.after != nil {
				h.health(shared.Connected)
				tc.after(fake)
			}
			fe := h.fatal(tc.code)
			if !strings.Contains(fe.Error(), tc.contains) {
				t.Fatalf("fatal %q does not mention %q", fe.Error(), tc.contains)
			}
			n := fake.RequestCount()
			// No request after a fatal error, Send included.
			_, err := h.a.Send(context.Background(), shared.Reply{ConversationID: "D1", Text: "hi"})
			if !errors.As(err, new(*shared.FatalError)) {
				t.Fatalf("Send after the fatal error: %v, want it again", err)
			}
			if m := fake.RequestCount(); m != n {
				t.Fatalf("%d requests after the fatal error", m-n)
			}
		})
	}
}

func TestSendRevokedTokenOneRequest(t *testing.T) {
	fake := fakeslack.New(t)
	h := newHarness(t, fake, nil).run()
	h.health(shared.Connected)
	fake.RevokeBotToken("token_expired")
	for range 2 {
		_, err := h.a.Send(context.Background(), shared.Reply{ConversationID: "D1", Text: "hi"})
		var fe *shared.FatalError
		if !errors.As(err, &fe) || !strings.Contains(fe.Hint, "SLACK_BOT_TOKEN") {
			t.Fatalf("Send with a revoked token: %v, want fatal naming SLACK_BOT_TOKEN", err)
		}
	}
	if n := fake.Calls("chat.postMessage"); n != 1 {
		t.Fatalf("chat.postMessage called %d times, want 1", n)
	}
	h.fatal(kit.CodeTokenRejected)
	eventually(t, "the connection to close", func() bool { return fake.OpenConnections() == 0 })
}

func TestSendRateLimitPerChannel(t *testing.T) {
	fake := fakeslack.New(t)
	h := newHarness(t, fake, nil)
	fake.RateLimit("chat.postMessage", time.Second, 1)
	ids, err := h.a.Send(context.Background(), shared.Reply{ConversationID: "C1", ThreadID: "1.2", Text: "first"})
	if err != nil || len(ids) != 1 {
		t.Fatalf("Send through a 429: %v %v", ids, err)
	}
	if fake.EarlyRetries() != 0 {
		t.Fatal("retried before Retry-After")
	}
	p := fake.Posted()
	if len(p) != 1 || p[0].ThreadTS != "1.2" || p[0].Text != "first" {
		t.Fatalf("posted %+v", p)
	}
}

func TestOpenRateLimitHonoured(t *testing.T) {
	fake := fakeslack.New(t)
	fake.RateLimit("apps.connections.open", time.Second, 1)
	h := newHarness(t, fake, nil).run()
	h.health(shared.Degraded)
	h.health(shared.Connected)
	if n := fake.EarlyRetries(); n != 0 {
		t.Fatalf("%d apps.connections.open calls before Retry-After had passed", n)
	}
}

func TestStopClosesConnection(t *testing.T) {
	fake := fakeslack.New(t)
	h := newHarness(t, fake, nil)
	ctx := context.Background()
	runErr := make(chan error, 1)
	go func() { runErr <- h.a.Run(ctx, h.events) }()
	h.runErr = runErr
	h.health(shared.Connected)
	if err := h.a.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := <-runErr; err != nil {
		t.Fatalf("Run after Stop: %v", err)
	}
	eventually(t, "the connection to close", func() bool { return fake.OpenConnections() == 0 })
}

func TestSendFailuresClassified(t *testing.T) {
	tests := map[string]struct {
		fault  func(*fakeslack.Server)
		reason shared.DeliveryReason
	}{
		"channel_not_found": {func(s *fakeslack.Server) { s.SetMethodError("chat.postMessage", "channel_not_found") }, shared.DeliveryNotFound},
		"not_in_channel":    {func(s *fakeslack.Server) { s.SetMethodError("chat.postMessage", "not_in_channel") }, shared.DeliveryForbidden},
		"msg_too_long":      {func(s *fakeslack.Server) { s.SetMethodError("chat.postMessage", "msg_too_long") }, shared.DeliveryTooLarge},
		"internal_error":    {func(s *fakeslack.Server) { s.SetMethodError("chat.postMessage", "internal_error") }, shared.DeliveryUnavailable},
		"invalid_blocks":    {func(s *fakeslack.Server) { s.SetMethodError("chat.postMessage", "invalid_blocks") }, shared.DeliveryRejected},
		"HTTP 503":          {func(s *fakeslack.Server) { s.SetHTTPStatus("chat.postMessage", 503) }, shared.DeliveryUnavailable},
		"HTTP 400":          {func(s *fakeslack.Server) { s.SetHTTPStatus("chat.postMessage", 400) }, shared.DeliveryRejected},
		// A Retry-After longer than the reply may wait: given up at once.
		"429 past the deadline": {func(s *fakeslack.Server) { s.RateLimit("chat.postMessage", 30*time.Second, 1) }, shared.DeliveryRateLimited},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fake := fakeslack.New(t)
			h := newHarness(t, fake, nil)
			tc.fault(fake)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ids, err := h.a.Send(ctx, shared.Reply{ConversationID: "C1", ThreadID: "1.1", Text: "hello"})
			var de *shared.DeliveryError
			if !errors.As(err, &de) || de.Reason != tc.reason || de.Posted != 0 || len(ids) != 0 {
				t.Fatalf("Send = %v, %v; want a %s DeliveryError", ids, err, tc.reason)
			}
			if tc.reason == shared.DeliveryRateLimited && de.RetryAfter != 30*time.Second {
				t.Fatalf("RetryAfter = %s, want 30s", de.RetryAfter)
			}
			if ctx.Err() != nil {
				t.Fatal("Send used up the deadline instead of giving up")
			}
		})
	}
}

// TestRunLifecycle checks the Run/Stop lifecycle the adapter takes from
// kit.Runner: one Run at a time and no Configure meanwhile, a Stop before
// Run ends that Run at once without a request, and a Run after a fatal
// error returns it again without a request.
func TestRunLifecycle(t *testing.T) {
	ctx := context.Background()
	if err := (&Adapter{}).Run(ctx, make(chan shared.Event)); err == nil || !strings.Contains(err.Error(), "before Configure") {
		t.Fatalf("Run before Configure = %v, want an error saying so", err)
	}

	fake := fakeslack.New(t)
	h := newHarness(t, fake, nil).run()
	h.health(shared.Connected)
	if err := h.a.Run(ctx, make(chan shared.Event)); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("a second Run = %v, want an error saying one runs", err)
	}
	raw, _ := json.Marshal(map[string]any{"bot_token": fakeslack.DefaultBotToken, "app_token": fakeslack.DefaultAppToken, "api_url": fake.APIURL})
	if err := h.a.Configure(ctx, shared.Config{Raw: raw}); err == nil || !strings.Contains(err.Error(), "while running") {
		t.Fatalf("Configure while running = %v, want a refusal", err)
	}

	idle := fakeslack.New(t)
	early := newHarness(t, idle, nil)
	if err := early.a.Stop(ctx); err != nil {
		t.Fatalf("Stop before Run: %v", err)
	}
	if err := early.a.Run(ctx, early.events); err != nil {
		t.Fatalf("Run after Stop = %v, want nil at once", err)
	}
	if n := idle.RequestCount(); n != 0 {
		t.Fatalf("%d requests by a Run after Stop, want none", n)
	}

	refused := fakeslack.New(t)
	refused.SetMethodError("auth.test", "not_allowed_token_type")
	dead := newHarness(t, refused, nil).run()
	fe := dead.fatal(kit.CodeTokenRejected)
	n := refused.RequestCount()
	if err := dead.a.Run(ctx, dead.events); kit.AsFatal(err) != fe {
		t.Fatalf("Run after the fatal error = %v, want the same fatal error", err)
	}
	if m := refused.RequestCount(); m != n {
		t.Fatalf("%d requests by a Run after the fatal error, want none", m-n)
	}
}
