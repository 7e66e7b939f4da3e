package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/plugins/discord/fakediscord"
	"github.com/plughost/gateway/shared"
)

// lineCounter counts log lines and keeps the last few.
type lineCounter struct {
	n    atomic.Int64
	mu   sync.Mutex
	last []string
}

func (l *lineCounter) Write(p []byte) (int, error) {
	l.n.Add(int64(strings.Count(string(p), "\n")))
	l.mu.Lock()
	l.last = append(l.last, string(p))
	if len(l.last) > 50 {
		l.last = l.last[1:]
	}
	l.mu.Unlock()
	return len(p), nil
}

func (l *lineCounter) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.last {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// stormRun runs an adapter in-process (to count its log lines) against
// fake, draining its events; it fails the test if Run ever returns before
// the test ends (a storm must never end the platform).
type stormRun struct {
	t        *testing.T
	lines    *lineCounter
	mu       sync.Mutex
	states   []shared.HealthState
	messages []string
	runErr   chan error
}

func startStorm(t *testing.T, fake *fakediscord.Server, tune timing, cfg map[string]any) *stormRun {
	t.Helper()
	r := &stormRun{t: t, lines: &lineCounter{}, runErr: make(chan error, 1)}
	a := &Adapter{tune: tune}
	full := map[string]any{"token": fakediscord.DefaultToken, "api_url": fake.APIURL}
	for k, v := range cfg {
		full[k] = v
	}
	raw, _ := json.Marshal(full)
	logger := hclog.New(&hclog.LoggerOptions{Output: r.lines, Level: hclog.Info})
	if err := a.Configure(context.Background(), shared.Config{Raw: raw, Logger: logger}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan shared.Event)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for ev := range events {
			if ev.Health != nil {
				r.mu.Lock()
				r.states = append(r.states, ev.Health.State)
				r.messages = append(r.messages, ev.Health.Message)
				r.mu.Unlock()
			}
		}
	}()
	go func() {
		err := a.Run(ctx, events)
		close(events)
		r.runErr <- err
	}()
	t.Cleanup(func() {
		_ = a.Stop(context.Background())
		cancel()
		select {
		case err := <-r.runErr:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after Stop")
		}
		<-drained
	})
	return r
}

// last returns the latest health state.
func (r *stormRun) last() shared.HealthState {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.states) == 0 {
		return -1
	}
	return r.states[len(r.states)-1]
}

func (r *stormRun) sawMessage(sub string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.messages {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

// during lets the storm go on for d, failing at once if Run returns.
func (r *stormRun) during(d time.Duration) {
	r.t.Helper()
	select {
	case err := <-r.runErr:
		r.runErr <- err
		r.t.Fatalf("the storm ended Run: %v", err)
	case <-time.After(d):
	}
}

func TestReconnectRequestIsAnsweredWithResume(t *testing.T) {
	fake := fakediscord.New(t)
	h := newHarness(t, fake, nil).run()
	h.health(shared.Connected)
	if n := fake.RequestReconnect(); n != 1 {
		t.Fatalf("op 7 sent to %d connections", n)
	}
	h.health(shared.Degraded)
	h.health(shared.Connected)
	if i, r := fake.Identifies(), fake.Resumes(); i != 1 || r != 1 {
		t.Errorf("identifies, resumes = %d, %d; want 1, 1 (op 7 is answered with RESUME)", i, r)
	}
}

// The storm: op 7 after every RESUMED made 5,207 reconnects and
// ~10,400 log lines in 3 s.
func TestReconnectStormAfterResumeBacksOff(t *testing.T) {
	fake := fakediscord.New(t)
	r := startStorm(t, fake, fastTiming, nil)
	eventually(t, "connected", func() bool { return r.last() == shared.Connected })
	fake.SetReconnectAfterResume(true)
	linesBefore := r.lines.n.Load()
	fake.RequestReconnect()
	const window = 2 * time.Second
	r.during(window)
	resumes := fake.Resumes()
	lines := r.lines.n.Load() - linesBefore
	t.Logf("in %s: %d resumes, %d log lines", window, resumes, lines)
	// Backoff from 20 ms capped at 200 ms allows about 15 in 2 s; the bug
	// made thousands.
	if resumes < 3 || resumes > 40 {
		t.Errorf("resumes in %s = %d; want a storm paced by the backoff (3..40)", window, resumes)
	}
	if lines > int64(4*resumes+10) {
		t.Errorf("%d log lines for %d reconnects", lines, resumes)
	}
	if n := fake.Identifies(); n != 1 {
		t.Errorf("identifies = %d; want 1 (every op 7 resumed)", n)
	}
	fake.SetReconnectAfterResume(false)
	fake.RequestReconnect()
	eventually(t, "connected again after the storm", func() bool {
		return r.last() == shared.Connected && fake.Connections() == 1
	})
}

// The other storm: a gateway answering IDENTIFY with op 7 spent the
// identify budget in 20 ms and the platform went failed for good.
func TestReconnectStormBeforeReadyIsPacedNotFatal(t *testing.T) {
	fake := fakediscord.New(t)
	fake.SetReconnectOnIdentify(-1)
	tune := fastTiming
	tune.identifyWindow = time.Second
	r := startStorm(t, fake, tune, map[string]any{"identify_budget": 3})
	const window = 2500 * time.Millisecond
	r.during(window)
	ids := fake.Identifies()
	t.Logf("in %s: %d identifies, %d op 7s", window, ids, fake.Reconnects())
	// At most 3 per 1 s window: 9 in 2.5 s, 12 if the machine is slow.
	if ids < 3 || ids > 12 {
		t.Errorf("identifies in %s = %d; want the budget's pace, 3..12", window, ids)
	}
	if !r.sawMessage("identify_budget") {
		t.Error("no degraded status saying the identify budget paces the reconnects")
	}
	if !r.lines.contains("op 7") {
		t.Error("the log never says Discord keeps asking to reconnect (op 7)")
	}
	fake.SetReconnectOnIdentify(0)
	eventually(t, "connected once the gateway answers READY", func() bool {
		return r.last() == shared.Connected && fake.Connections() == 1
	})
}

// A failure the plugin does not recognise still ends at the budget.
func TestIdentifyBudgetStillFatalForUnknownFailures(t *testing.T) {
	fake := fakediscord.New(t)
	fake.SetIdentifyCloseCode(4000)
	h := newHarness(t, fake, map[string]any{"identify_budget": 2}).run()
	h.fatal(CodeIdentifyBudget)
}

func TestSendRateLimitedLongerThanTheDeadlineFailsAtOnce(t *testing.T) {
	fake := fakediscord.New(t)
	h := newHarness(t, fake, nil)
	fake.RateLimit(-1, 60*time.Second)
	for i := range 2 { // the second finds the bucket already waiting
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := h.client.Send(ctx, shared.Reply{ConversationID: "C1", Text: "hi"})
		cancel()
		var de *shared.DeliveryError
		if !errors.As(err, &de) || de.Reason != shared.DeliveryRateLimited {
			t.Fatalf("send %d: err = %v (%T); want a rate_limited *shared.DeliveryError", i, err, err)
		}
		if !strings.Contains(de.Message, "rate limited by Discord for 60 s") || de.RetryAfter < 59*time.Second {
			t.Errorf("send %d: message %q, retry after %s", i, de.Message, de.RetryAfter)
		}
	}
	if n := fake.RateLimited(); n != 1 {
		t.Errorf("the fake answered 429 %d times; want 1 (the second send knew the bucket was waiting)", n)
	}
	if len(fake.Messages()) != 0 {
		t.Error("a message was posted")
	}
}

func TestSendRateLimitedWithoutDeadlineEndsWithContext(t *testing.T) {
	fake := fakediscord.New(t)
	h := newHarness(t, fake, nil)
	fake.RateLimit(-1, 60*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := h.client.Send(ctx, shared.Reply{ConversationID: "C1", Text: "hi"})
		errc <- err
	}()
	eventually(t, "the 429", func() bool { return fake.RateLimited() == 1 })
	cancel()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Send succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Send still waiting for the rate limit after its context ended")
	}
}

func TestSendShortRateLimitIsWaitedOut(t *testing.T) {
	fake := fakediscord.New(t)
	h := newHarness(t, fake, nil)
	fake.RateLimit(1, 300*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ids, err := h.client.Send(ctx, shared.Reply{ConversationID: "C1", Text: "hi"})
	if err != nil || len(ids) != 1 {
		t.Fatalf("Send = %v, %v", ids, err)
	}
	if n := fake.RateLimited(); n != 1 {
		t.Errorf("429s = %d, want 1", n)
	}
}

func TestSendFailuresAreClassified(t *testing.T) {
	for _, tc := range []struct {
		status int
		reason shared.DeliveryReason
		words  string
	}{
		{403, shared.DeliveryForbidden, "Missing Permissions"},
		{404, shared.DeliveryNotFound, "Unknown Channel"},
		{500, shared.DeliveryUnavailable, "HTTP 500"},
		{413, shared.DeliveryTooLarge, "too large"},
		{400, shared.DeliveryRejected, "HTTP 400"},
	} {
		fake := fakediscord.New(t)
		h := newHarness(t, fake, nil)
		fake.SetRESTStatus("/channels/C9/messages", tc.status)
		_, err := h.client.Send(context.Background(), shared.Reply{ConversationID: "C9", Text: strings.Repeat("word ", 500)})
		var de *shared.DeliveryError
		if !errors.As(err, &de) || de.Reason != tc.reason {
			t.Errorf("HTTP %d: err = %v (%T); want a %s *shared.DeliveryError", tc.status, err, err, tc.reason)
			continue
		}
		if !strings.Contains(de.Message, tc.words) || !strings.Contains(de.Message, "C9") && tc.status != 413 && tc.status != 500 {
			t.Errorf("HTTP %d: message %q", tc.status, de.Message)
		}
		if !strings.Contains(de.Message, "posted 0 of 2 parts") {
			t.Errorf("HTTP %d: message %q does not say how much was posted", tc.status, de.Message)
		}
		// Another channel is unaffected.
		if _, err := h.client.Send(context.Background(), shared.Reply{ConversationID: "C1", Text: "ok"}); err != nil {
			t.Errorf("HTTP %d: send to another channel: %v", tc.status, err)
		}
	}
}
