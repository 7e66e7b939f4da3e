package router

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/plughost/gateway/shared"
)

// streamAgents is a fakeAgents that streams: each reply is the pieces it
// is given, one delta each, then waits for more until released.
type streamAgents struct {
	fakeAgents
	pieces  []string
	release chan struct{}
	sent    chan struct{} // closed once every piece went out
}

var _ StreamingAgents = (*streamAgents)(nil)

func (a *streamAgents) ReplyStream(ctx context.Context, _, _ string, onDelta func(string)) (Answer, error) {
	for _, p := range a.pieces {
		onDelta(p)
	}
	close(a.sent)
	select {
	case <-a.release:
		return Answer{Text: strings.Join(a.pieces, "")}, nil
	case <-ctx.Done():
		return Answer{}, ctx.Err()
	}
}

// streamRecorder is a recorder that also streams.
type streamRecorder struct {
	recorder
	streams bool
	mu      sync.Mutex
	parts   []shared.ReplyPart
}

var _ StreamSender = (*streamRecorder)(nil)

func (s *streamRecorder) Streams(string) bool { return s.streams }

func (s *streamRecorder) SendPart(_ context.Context, _ string, p shared.ReplyPart) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parts = append(s.parts, p)
	return nil, nil
}

func (s *streamRecorder) all() []shared.ReplyPart {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]shared.ReplyPart(nil), s.parts...)
}

func newStreamRouter(t *testing.T, streams bool) (*Router, *streamAgents, *streamRecorder) {
	t.Helper()
	agents := &streamAgents{pieces: []string{"Hel", "lo ", "there"}, release: make(chan struct{}), sent: make(chan struct{})}
	rec := &streamRecorder{streams: streams}
	r := New(Options{Agents: agents, Sender: rec})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		r.Close(ctx)
	})
	return r, agents, rec
}

// TestStreamedReplyPartsThenTheWholeReply: partial text reaches the
// platform before the provider finished, and the reply ends with the whole
// text, under one reply id.
func TestStreamedReplyPartsThenTheWholeReply(t *testing.T) {
	r, agents, rec := newStreamRouter(t, true)
	r.Handle("p", streamMsg("m1", "c", "hi"))
	<-agents.sent
	waitFor(t, "the deltas", func() bool { return len(rec.all()) == 4 })
	close(agents.release)
	waitFor(t, "the end", func() bool { return len(rec.all()) == 5 })
	parts := rec.all()
	wantPhases := []shared.ReplyPhase{shared.PhaseStart, shared.PhaseDelta, shared.PhaseDelta, shared.PhaseDelta, shared.PhaseEnd}
	for i, p := range parts {
		if p.Phase != wantPhases[i] || p.ReplyID != parts[0].ReplyID || p.ReplyID == "" || p.Reply.ReplyToID != "m1" {
			t.Fatalf("part %d = %+v, want phase %s under one reply id", i, p, wantPhases[i])
		}
	}
	if end := parts[4].Reply; end.Text != "Hello there" || end.Kind != shared.KindReply {
		t.Errorf("end = %+v, want the whole reply", end)
	}
	if got := rec.recorder.all(); len(got) != 0 {
		t.Errorf("whole replies sent as well: %+v", got)
	}
}

// TestStopEndsAStreamedReplyAndSaysSo: /stop mid-stream fails the streamed
// reply with "Stopped." instead of leaving it open or sending a second one.
func TestStopEndsAStreamedReplyAndSaysSo(t *testing.T) {
	r, agents, rec := newStreamRouter(t, true)
	r.Handle("p", streamMsg("m1", "c", "hi"))
	<-agents.sent
	r.Handle("p", msg("m2", "c", "/stop"))
	waitFor(t, "the stream to end", func() bool {
		parts := rec.all()
		return len(parts) == 5
	})
	last := rec.all()[4]
	if last.Phase != shared.PhaseFail || last.Reply.Text != "Stopped." || last.Reply.Kind != shared.KindNotice {
		t.Errorf("last part = %+v, want a Fail saying Stopped.", last)
	}
}

// TestNonStreamingPlatformGetsTheWholeReply: a platform that does not show
// streamed replies gets one Send with the final text.
func TestNonStreamingPlatformGetsTheWholeReply(t *testing.T) {
	r, agents, rec := newStreamRouter(t, false)
	close(agents.release)
	r.Handle("p", msg("m1", "c", "hi"))
	got := rec.waitReply(t, "m1")
	if got.Text != "echo: hi" || len(rec.all()) != 0 {
		t.Errorf("reply = %+v, parts %+v; want the whole reply and no parts", got, rec.all())
	}
}

// streamMsg is msg asking for its reply streamed.
func streamMsg(id, conv, text string) *shared.Message {
	m := msg(id, conv, text)
	m.Stream = true
	return m
}

// TestMessageNotAskingToStreamGetsTheWholeReply: on a platform that shows
// streamed replies, a message that did not ask for one (an HTTP request
// without "stream": true) gets one Send, and the provider is not streamed.
func TestMessageNotAskingToStreamGetsTheWholeReply(t *testing.T) {
	r, agents, rec := newStreamRouter(t, true)
	close(agents.release)
	r.Handle("p", msg("m1", "c", "hi"))
	got := rec.waitReply(t, "m1")
	if got.Text != "echo: hi" || len(rec.all()) != 0 {
		t.Errorf("reply = %+v, parts %+v; want the whole reply and no parts", got, rec.all())
	}
}
