package router

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plughost/gateway/shared"

	"github.com/plughost/gateway/shared/kit/fakekit"
)

// waitTimeout bounds every wait; nothing here should come near it.
const waitTimeout = 5 * time.Second

// fakeAgents is an Agents whose methods call its function fields. A nil
// field answers with a harmless default.
type fakeAgents struct {
	ReplyFunc func(ctx context.Context, key, text string) (string, error)
	// ReplyWithFunc answers ReplyWith; nil answers as Reply does.
	ReplyWithFunc func(ctx context.Context, key, text string, opts TurnOptions) (string, error)
	ResetFunc     func(ctx context.Context, key string) error
	ModelFunc     func(key string) (string, error)
	SetModelFunc  func(ctx context.Context, key, model string) error
	ModelsFunc    func() []string
	StatusFunc    func(key string) (SessionStatus, error)
	// MarkUndeliveredFunc gets the texts of the turns marked undelivered.
	MarkUndeliveredFunc func(key, text string)
}

var _ Agents = (*fakeAgents)(nil)

func (f *fakeAgents) Reply(ctx context.Context, key, text string) (Answer, error) {
	if f.ReplyFunc == nil {
		return Answer{Text: "echo: " + text, Turn: text}, nil
	}
	reply, err := f.ReplyFunc(ctx, key, text)
	return Answer{Text: reply, Turn: text}, err
}

func (f *fakeAgents) ReplyWith(ctx context.Context, key, text string, opts TurnOptions) (Answer, error) {
	if f.ReplyWithFunc == nil {
		return f.Reply(ctx, key, text)
	}
	reply, err := f.ReplyWithFunc(ctx, key, text, opts)
	if opts.Stateless {
		return Answer{Text: reply}, err
	}
	return Answer{Text: reply, Turn: text}, err
}

func (f *fakeAgents) MarkUndelivered(_ context.Context, key string, turn any) error {
	if f.MarkUndeliveredFunc != nil {
		f.MarkUndeliveredFunc(key, turn.(string))
	}
	return nil
}

func (f *fakeAgents) Reset(ctx context.Context, key string) error {
	if f.ResetFunc == nil {
		return nil
	}
	return f.ResetFunc(ctx, key)
}

func (f *fakeAgents) Model(key string) (string, error) {
	if f.ModelFunc == nil {
		return "echo/echo", nil
	}
	return f.ModelFunc(key)
}

func (f *fakeAgents) SetModel(ctx context.Context, key, model string) error {
	if f.SetModelFunc == nil {
		return nil
	}
	return f.SetModelFunc(ctx, key, model)
}

func (f *fakeAgents) Models() []string {
	if f.ModelsFunc == nil {
		return []string{"echo"}
	}
	return f.ModelsFunc()
}

func (f *fakeAgents) Status(key string) (SessionStatus, error) {
	if f.StatusFunc == nil {
		return SessionStatus{Model: "echo/echo"}, nil
	}
	return f.StatusFunc(key)
}

// sent is one reply the router delivered.
type sent struct {
	Platform string
	shared.Reply
}

// recorder is a Sender that records every reply and typing call. SendFunc,
// if set, is called first; an error from it fails the send unrecorded.
type recorder struct {
	mu       sync.Mutex
	replies  []sent
	typing   []shared.Conversation
	SendFunc func(ctx context.Context, platform string, rep shared.Reply) error
}

var _ Sender = (*recorder)(nil)

func (r *recorder) Send(ctx context.Context, platform string, rep shared.Reply) ([]string, error) {
	r.mu.Lock()
	send := r.SendFunc
	r.mu.Unlock()
	if send != nil {
		if err := send(ctx, platform, rep); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.replies = append(r.replies, sent{Platform: platform, Reply: rep})
	return []string{fmt.Sprint("out-", len(r.replies))}, nil
}

func (r *recorder) Typing(_ context.Context, _ string, conv shared.Conversation) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.typing = append(r.typing, conv)
	return nil
}

func (r *recorder) all() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sent(nil), r.replies...)
}

func (r *recorder) typingCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.typing)
}

// waitReplies waits until at least n replies were sent and returns them.
func (r *recorder) waitReplies(t *testing.T, n int) []sent {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d replies", n), func() bool { return len(r.all()) >= n })
	return r.all()
}

// reply returns the one reply to message id, failing unless exactly one.
func (r *recorder) reply(t *testing.T, id string) sent {
	t.Helper()
	var found []sent
	for _, s := range r.all() {
		if s.ReplyToID == id {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("message %q got %d replies, want exactly 1: %+v", id, len(found), found)
	}
	return found[0]
}

// waitReply waits for the reply to message id.
func (r *recorder) waitReply(t *testing.T, id string) sent {
	t.Helper()
	waitFor(t, "a reply to "+id, func() bool {
		for _, s := range r.all() {
			if s.ReplyToID == id {
				return true
			}
		}
		return false
	})
	return r.reply(t, id)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	fakekit.Eventually(t, waitTimeout, what, cond)
}

// msg is a direct message in conversation conv.
func msg(id, conv, text string) *shared.Message {
	return &shared.Message{ID: id, ConversationID: conv, UserID: "u1", Direct: true, Text: text}
}

// newTestRouter returns a router over agents and a recorder, closed at the
// end of the test so no worker outlives it.
func newTestRouter(t *testing.T, agents Agents, opts Options) (*Router, *recorder) {
	t.Helper()
	rec := &recorder{}
	opts.Agents, opts.Sender = agents, rec
	if opts.QueueLimit == 0 {
		// 0 means no queue; tests that want none call New themselves.
		opts.QueueLimit = 8
	}
	r := New(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		r.Close(ctx)
	})
	return r, rec
}

// gate is a fake agent turn that blocks until released or cancelled, and
// tells who is inside.
type gate struct {
	mu       sync.Mutex
	inside   map[string]int // text → times entered
	active   int
	maxSeen  int
	release  chan struct{}
	entered  chan string
	canceled []string
}

func newGate() *gate {
	return &gate{inside: map[string]int{}, release: make(chan struct{}), entered: make(chan string, 100)}
}

// reply blocks until the gate opens (answering "echo: text") or ctx ends
// (returning its error).
func (g *gate) reply(ctx context.Context, _, text string) (string, error) {
	g.mu.Lock()
	g.inside[text]++
	g.active++
	g.maxSeen = max(g.maxSeen, g.active)
	g.mu.Unlock()
	g.entered <- text
	defer func() {
		g.mu.Lock()
		g.active--
		g.mu.Unlock()
	}()
	select {
	case <-g.release:
		return "echo: " + text, nil
	case <-ctx.Done():
		g.mu.Lock()
		g.canceled = append(g.canceled, text)
		g.mu.Unlock()
		return "", ctx.Err()
	}
}

func (g *gate) waitEntered(t *testing.T, text string) {
	t.Helper()
	select {
	case got := <-g.entered:
		if got != text {
			t.Fatalf("agent got %q next, want %q", got, text)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("agent never got %q", text)
	}
}

func (g *gate) saw(text string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inside[text]
}

func (g *gate) stats() (active, maxSeen int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.active, g.maxSeen
}

func (g *gate) wasCanceled(text string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.canceled {
		if c == text {
			return true
		}
	}
	return false
}

func mustContain(t *testing.T, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Errorf("%q does not contain %q", got, want)
	}
}
