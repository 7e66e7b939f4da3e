package router

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"

	"github.com/plughost/gateway/shared"
)

// Stateless messages run at once, each on its own (no queue, no "busy"),
// are never commands, and reach the agents with their history; a session
// message with a model reaches them with it.
func TestStatelessAndModelOptionsReachTheAgents(t *testing.T) {
	g := newGate()
	var mu sync.Mutex
	got := map[string]TurnOptions{}
	keys := map[string]string{}
	agents := &fakeAgents{ReplyWithFunc: func(ctx context.Context, key, text string, opts TurnOptions) (string, error) {
		mu.Lock()
		got[text], keys[text] = opts, key
		mu.Unlock()
		return g.reply(ctx, key, text)
	}}
	r, rec := newTestRouter(t, agents, Options{})
	history := []shared.HistoryMessage{{Role: "user", Text: "a"}, {Role: "assistant", Text: "b"}}
	for _, id := range []string{"s1", "s2"} {
		m := msg(id, "stateless", "/new "+id)
		m.Stateless = &shared.Stateless{History: history}
		r.Handle("web", m)
	}
	// Both in the agent at once: neither waits behind the other.
	waitFor(t, "both stateless turns in the agent", func() bool { return g.saw("/new s1") == 1 && g.saw("/new s2") == 1 })
	<-g.entered
	<-g.entered
	m := msg("m1", "alice", "hi")
	m.Model = "echo/echo"
	r.Handle("web", m)
	g.waitEntered(t, "hi")
	close(g.release)
	rec.waitReplies(t, 3)
	for _, id := range []string{"s1", "s2"} {
		if rep := rec.reply(t, id); rep.Kind != shared.KindReply || rep.Text != "echo: /new "+id {
			t.Errorf("%s: %+v", id, rep)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if o := got["/new s1"]; !o.Stateless || o.Model != "" || !reflect.DeepEqual(o.History, history) {
		t.Errorf("stateless options = %+v", o)
	}
	if keys["/new s1"] == keys["/new s2"] || keys["/new s1"] == r.Key("web", msg("x", "stateless", "")) {
		t.Errorf("stateless keys %q, %q share a queue (or the session's)", keys["/new s1"], keys["/new s2"])
	}
	if o := got["hi"]; o.Stateless || o.Model != "echo/echo" || keys["hi"] != "web:alice" {
		t.Errorf("model options = %+v on %q", o, keys["hi"])
	}
}

// codedError is a failure with a reply code.
type codedError struct{ code string }

func (e codedError) Error() string       { return "no such model" }
func (e codedError) UserMessage() string { return "no such model" }
func (e codedError) ReplyCode() string   { return e.code }

// A failure that has a reply code gives it to the error reply; a stateless
// turn that could not be delivered marks nothing.
func TestReplyCodeReachesThePlatform(t *testing.T) {
	marked := false
	agents := &fakeAgents{
		ReplyWithFunc: func(_ context.Context, _, text string, opts TurnOptions) (string, error) {
			if opts.Model == "nosuch/x" {
				return "", codedError{shared.CodeModelNotFound}
			}
			return "ok", nil
		},
		MarkUndeliveredFunc: func(string, string) { marked = true },
	}
	r, rec := newTestRouter(t, agents, Options{})
	m := msg("m1", "alice", "hi")
	m.Model = "nosuch/x"
	r.Handle("web", m)
	if rep := rec.waitReply(t, "m1"); rep.Kind != shared.KindError || rep.Code != shared.CodeModelNotFound || rep.Text != "no such model" {
		t.Errorf("reply = %+v", rep)
	}
	rec.mu.Lock()
	rec.SendFunc = func(context.Context, string, shared.Reply) error { return errors.New("the client left") }
	rec.mu.Unlock()
	s := msg("s1", "stateless", "hi")
	s.Stateless = &shared.Stateless{}
	r.Handle("web", s)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r.Close(ctx)
	if marked {
		t.Error("a stateless turn was marked undelivered")
	}
}
