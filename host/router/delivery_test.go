package router

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plughost/gateway/shared"
)

// A reply the platform fails is marked undelivered and the user is told,
// once.
func TestUndeliveredReplyIsMarkedAndReported(t *testing.T) {
	var mu sync.Mutex
	var marked []string
	agents := &fakeAgents{MarkUndeliveredFunc: func(_, text string) {
		mu.Lock()
		marked = append(marked, text)
		mu.Unlock()
	}}
	r, rec := newTestRouter(t, agents, Options{})
	rec.SendFunc = func(_ context.Context, _ string, rep shared.Reply) error {
		if rep.Kind == shared.KindReply {
			return errors.New("message too large")
		}
		return nil
	}
	r.Handle("web", msg("m1", "alice", "hello"))
	rep := rec.waitReply(t, "m1")
	if rep.Kind != shared.KindError || !strings.Contains(rep.Text, "could not be delivered") || !strings.Contains(rep.Text, "message too large") {
		t.Fatalf("the user was told %+v", rep)
	}
	waitFor(t, "the turn to be marked", func() bool { mu.Lock(); defer mu.Unlock(); return len(marked) == 1 })
	if marked[0] != "hello" {
		t.Fatalf("marked %v, want the turn of hello", marked)
	}
}

// Replies stuck on one platform neither hold reply slots nor delay
// another platform's replies.
func TestHungPlatformDoesNotStarveAnother(t *testing.T) {
	release := make(chan struct{})
	r, rec := newTestRouter(t, &fakeAgents{}, Options{MaxConcurrent: 1, DeliveryWorkers: 2, DeliveryQueue: 4})
	rec.SendFunc = func(ctx context.Context, platform string, _ shared.Reply) error {
		if platform != "hung" {
			return nil
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer close(release)
	for _, id := range []string{"h1", "h2", "h3", "h4"} {
		r.Handle("hung", msg(id, id, "stuck"))
	}
	for _, id := range []string{"o1", "o2", "o3"} {
		r.Handle("other", msg(id, id, "fine"))
		if rep := rec.waitReply(t, id); rep.Text != "echo: fine" {
			t.Fatalf("%s: %+v", id, rep)
		}
	}
}

// Handle returns at once even when the store and the plugin do not: a
// /new whose reset hangs, notices whose delivery hangs.
func TestHandleNeverWaitsOnStoreOrPlugin(t *testing.T) {
	resetting := make(chan struct{})
	unblock := make(chan struct{})
	agents := &fakeAgents{ResetFunc: func(ctx context.Context, _ string) error {
		close(resetting)
		select {
		case <-unblock:
		case <-ctx.Done():
		}
		return nil
	}}
	r, rec := newTestRouter(t, agents, Options{})
	rec.SendFunc = func(ctx context.Context, _ string, _ shared.Reply) error {
		select {
		case <-unblock:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Handle("web", msg("n1", "alice", "/new"))
		r.Handle("web", msg("h1", "bob", "/help"))
		r.Handle("web", msg("s1", "carol", "/stop"))
		r.Handle("web", msg("m1", "alice", "/model echo/x"))
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Handle blocked on the store or the plugin")
	}
	<-resetting
	close(unblock)
	for _, id := range []string{"n1", "h1", "s1", "m1"} {
		rec.waitReply(t, id)
	}
	if rep := rec.reply(t, "m1"); rep.Text != "Model switched to echo/x." {
		t.Errorf("/model after /new: %+v", rep)
	}
}

// A message whose platform stopped waiting before its turn could start
// never reaches the agent.
func TestExpiredMessageStartsNoTurn(t *testing.T) {
	g := newGate()
	r, rec := newTestRouter(t, &fakeAgents{ReplyFunc: g.reply}, Options{})
	r.Handle("web", msg("m1", "alice", "one"))
	g.waitEntered(t, "one")
	m := msg("m2", "alice", "two")
	m.ExpiresUnixNano = time.Now().Add(-time.Millisecond).UnixNano() // given up while it waited
	r.Handle("web", m)
	r.Handle("web", msg("m3", "alice", "three"))
	close(g.release)
	rec.waitReply(t, "m3")
	if g.saw("two") != 0 {
		t.Fatal("the agent was asked for a message its platform had given up on")
	}
}

func TestDeliveryTimeoutScalesWithParts(t *testing.T) {
	r := New(Options{DeliveryTimeout: 10 * time.Second, DeliveryPerPart: 2 * time.Second})
	defer r.Close(context.Background())
	if got := r.deliveryTimeout("hi"); got != 12*time.Second {
		t.Errorf("one part: %s", got)
	}
	if got := r.deliveryTimeout(strings.Repeat("x", 60000)); got != 70*time.Second {
		t.Errorf("30 parts: %s, want 70s", got)
	}
}
