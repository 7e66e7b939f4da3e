package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/plughost/gateway/shared"
)

func TestSessionAnswersInArrivalOrderOneAtATime(t *testing.T) {
	const n = 30
	var mu sync.Mutex
	active, overlap := 0, false
	var order []string
	agents := &fakeAgents{ReplyFunc: func(_ context.Context, key, text string) (string, error) {
		mu.Lock()
		active++
		if active > 1 {
			overlap = true
		}
		order = append(order, text)
		mu.Unlock()
		time.Sleep(200 * time.Microsecond) // widen the window an overlap would show in
		mu.Lock()
		active--
		mu.Unlock()
		return "echo: " + text, nil
	}}
	r, rec := newTestRouter(t, agents, Options{QueueLimit: n})
	for i := range n {
		r.Handle("web", msg(fmt.Sprint("m", i), "alice", fmt.Sprint("text ", i)))
	}
	replies := rec.waitReplies(t, n)
	mu.Lock()
	defer mu.Unlock()
	if overlap {
		t.Error("two replies of one session ran at the same time")
	}
	for i, rep := range replies {
		if rep.ReplyToID != fmt.Sprint("m", i) || rep.Text != fmt.Sprint("echo: text ", i) || rep.Kind != shared.KindReply {
			t.Fatalf("reply %d = %+v, want the answer to m%d", i, rep, i)
		}
		if rep.Platform != "web" || rep.ConversationID != "alice" {
			t.Errorf("reply %d went to %s/%s", i, rep.Platform, rep.ConversationID)
		}
		if order[i] != fmt.Sprint("text ", i) {
			t.Errorf("agent turn %d was %q", i, order[i])
		}
	}
}

func TestSessionsRunConcurrentlyUpToMaxConcurrent(t *testing.T) {
	const bound, sessions = 3, 10
	g := newGate()
	r, rec := newTestRouter(t, &fakeAgents{ReplyFunc: g.reply}, Options{MaxConcurrent: bound})
	for i := range sessions {
		r.Handle("web", msg(fmt.Sprint("m", i), fmt.Sprint("s", i), fmt.Sprint("t", i)))
	}
	waitFor(t, "the bound to be reached", func() bool { a, _ := g.stats(); return a == bound })
	// Give an unbounded router the chance to show itself.
	time.Sleep(50 * time.Millisecond)
	if a, m := g.stats(); a != bound || m != bound {
		t.Fatalf("with %d sessions waiting: %d active, %d at most; want %d", sessions, a, m, bound)
	}
	close(g.release)
	replies := rec.waitReplies(t, sessions)
	if _, m := g.stats(); m != bound {
		t.Errorf("max concurrency = %d, want %d", m, bound)
	}
	for i := range sessions {
		if rep := rec.reply(t, fmt.Sprint("m", i)); rep.Kind != shared.KindReply {
			t.Errorf("m%d: %+v", i, rep)
		}
	}
	if len(replies) != sessions {
		t.Errorf("%d replies, want %d", len(replies), sessions)
	}
}

func TestQueueLimitAnswersBusyAndDropsNothingSilently(t *testing.T) {
	g := newGate()
	r, rec := newTestRouter(t, &fakeAgents{ReplyFunc: g.reply}, Options{QueueLimit: 2})
	r.Handle("web", msg("m1", "alice", "one"))
	g.waitEntered(t, "one")
	for _, id := range []string{"m2", "m3", "m4", "m5"} {
		r.Handle("web", msg(id, "alice", "text "+id))
	}
	// Over the bound: answered at once, before anything is released.
	for _, id := range []string{"m4", "m5"} {
		rep := rec.waitReply(t, id)
		if rep.Kind != shared.KindBusy {
			t.Errorf("%s kind = %d, want KindBusy", id, rep.Kind)
		}
		mustContain(t, rep.Text, "Busy")
		mustContain(t, rep.Text, "2 messages")
	}
	if busy, waiting := r.Busy(r.Key("web", msg("", "alice", ""))); !busy || waiting != 2 {
		t.Errorf("Busy = %v, %d; want true, 2", busy, waiting)
	}
	close(g.release)
	rec.waitReplies(t, 5)
	for _, id := range []string{"m1", "m2", "m3"} {
		if rep := rec.reply(t, id); rep.Kind != shared.KindReply {
			t.Errorf("%s: %+v", id, rep)
		}
	}
	for _, id := range []string{"m4", "m5"} {
		rec.reply(t, id) // exactly one each
		if n := g.saw("text " + id); n != 0 {
			t.Errorf("agent saw the rejected %s %d times", id, n)
		}
	}
	if n := len(rec.all()); n != 5 {
		t.Errorf("%d replies for 5 messages", n)
	}
}

func TestStopCancelsRunningReplyAndDropsQueue(t *testing.T) {
	g := newGate()
	r, rec := newTestRouter(t, &fakeAgents{ReplyFunc: g.reply}, Options{})
	r.Handle("web", msg("m1", "alice", "one"))
	g.waitEntered(t, "one")
	r.Handle("web", msg("m2", "alice", "two"))
	r.Handle("web", msg("m3", "alice", "three"))
	r.Handle("web", msg("s1", "alice", "/stop"))

	if rep := rec.waitReply(t, "s1"); rep.Text != "Stopped the reply in progress." || rep.Kind != shared.KindNotice {
		t.Errorf("/stop answered %+v", rep)
	}
	if rep := rec.waitReply(t, "m1"); rep.Text != "Stopped." || rep.Kind != shared.KindNotice {
		t.Errorf("the stopped message got %+v", rep)
	}
	if !g.wasCanceled("one") {
		t.Error("the agent's ctx was not cancelled")
	}
	for _, id := range []string{"m2", "m3"} {
		rep := rec.waitReply(t, id)
		mustContain(t, rep.Text, "Stopped before it was answered")
	}
	waitFor(t, "the session to go idle", func() bool { b, _ := r.Busy("web:alice"); return !b })
	if g.saw("two") != 0 || g.saw("three") != 0 {
		t.Error("queued messages reached the agent after /stop")
	}

	// The session works again, and /stop with nothing running says so.
	close(g.release)
	r.Handle("web", msg("m4", "alice", "four"))
	if rep := rec.waitReply(t, "m4"); rep.Text != "echo: four" {
		t.Errorf("after /stop: %+v", rep)
	}
	waitFor(t, "the session to go idle", func() bool { b, _ := r.Busy("web:alice"); return !b })
	r.Handle("web", msg("s2", "alice", "/stop"))
	if rep := rec.waitReply(t, "s2"); rep.Text != "Nothing to stop." {
		t.Errorf("idle /stop answered %q", rep.Text)
	}
	if n := len(rec.all()); n != 6 {
		t.Errorf("%d replies for 6 messages", n)
	}
}

func TestStopOnlyTouchesItsOwnSession(t *testing.T) {
	g := newGate()
	r, rec := newTestRouter(t, &fakeAgents{ReplyFunc: g.reply}, Options{})
	r.Handle("web", msg("a1", "alice", "a"))
	r.Handle("web", msg("b1", "bob", "b"))
	waitFor(t, "both sessions to run", func() bool { a, _ := g.stats(); return a == 2 })
	r.Handle("web", msg("s1", "alice", "/stop"))
	rec.waitReply(t, "a1")
	if g.wasCanceled("b") {
		t.Error("/stop in alice's session cancelled bob's reply")
	}
	close(g.release)
	if rep := rec.waitReply(t, "b1"); rep.Text != "echo: b" {
		t.Errorf("bob got %+v", rep)
	}
}

func TestNewResetsAtOnceWhileReplyRuns(t *testing.T) {
	for _, cmd := range []string{"/new", "/reset", "/NEW@gatewaybot"} {
		t.Run(cmd, func(t *testing.T) {
			g := newGate()
			var mu sync.Mutex
			var resets []string
			agents := &fakeAgents{
				ReplyFunc: g.reply,
				ResetFunc: func(_ context.Context, key string) error {
					mu.Lock()
					resets = append(resets, key)
					mu.Unlock()
					return nil
				},
			}
			r, rec := newTestRouter(t, agents, Options{})
			r.Handle("web", msg("m1", "alice", "one"))
			g.waitEntered(t, "one")
			r.Handle("web", msg("m2", "alice", "two"))
			r.Handle("web", msg("n1", "alice", cmd))
			// The gate is never released: m1 can only end by being cancelled.
			if rep := rec.waitReply(t, "n1"); rep.Text != "Started a new session." || rep.Kind != shared.KindNotice {
				t.Errorf("%s answered %+v", cmd, rep)
			}
			if rep := rec.waitReply(t, "m1"); rep.Text != "Stopped." {
				t.Errorf("running reply got %+v", rep)
			}
			mustContain(t, rec.waitReply(t, "m2").Text, "Stopped before it was answered")
			mu.Lock()
			defer mu.Unlock()
			if len(resets) != 1 || resets[0] != "web:alice" {
				t.Errorf("Reset calls = %v, want [web:alice]", resets)
			}
			if g.saw("two") != 0 {
				t.Error("a message queued before /new reached the agent")
			}
		})
	}
}

func TestNewResetFailureIsReported(t *testing.T) {
	r, rec := newTestRouter(t, &fakeAgents{
		ResetFunc: func(context.Context, string) error { return userErr{"The session store is read-only."} },
	}, Options{})
	r.Handle("web", msg("n1", "alice", "/new"))
	if rep := rec.waitReply(t, "n1"); rep.Kind != shared.KindNotice || rep.Text != "The session store is read-only." {
		t.Errorf("failed /new answered %+v", rep)
	}
}

func TestModelCommand(t *testing.T) {
	var mu sync.Mutex
	var switched []string
	agents := &fakeAgents{
		ModelFunc:  func(key string) (string, error) { return "echo/echo", nil },
		ModelsFunc: func() []string { return []string{"echo", "openai"} },
		SetModelFunc: func(_ context.Context, key, model string) error {
			if model == "nope/x" {
				return userErr{`Unknown provider "nope". Providers: echo, openai`}
			}
			mu.Lock()
			switched = append(switched, key+"="+model)
			mu.Unlock()
			return nil
		},
	}
	r, rec := newTestRouter(t, agents, Options{})

	r.Handle("web", msg("c1", "alice", "/model"))
	rep := rec.waitReply(t, "c1")
	if rep.Kind != shared.KindNotice {
		t.Errorf("/model kind = %d", rep.Kind)
	}
	mustContain(t, rep.Text, "Model: echo/echo")
	mustContain(t, rep.Text, "Providers: echo, openai")

	r.Handle("web", msg("c2", "alice", "  /model   openai/gpt-4o  "))
	if rep := rec.waitReply(t, "c2"); rep.Text != "Model switched to openai/gpt-4o." || rep.Kind != shared.KindNotice {
		t.Errorf("/model openai/gpt-4o answered %+v", rep)
	}
	mu.Lock()
	if len(switched) != 1 || switched[0] != "web:alice=openai/gpt-4o" {
		t.Errorf("SetModel calls = %v", switched)
	}
	mu.Unlock()

	r.Handle("web", msg("c3", "alice", "/model nope/x"))
	if rep := rec.waitReply(t, "c3"); rep.Kind != shared.KindNotice || rep.Text != `Unknown provider "nope". Providers: echo, openai` {
		t.Errorf("bad /model answered %+v", rep)
	}
}

func TestStatusShowsModelMessagesAndState(t *testing.T) {
	g := newGate()
	agents := &fakeAgents{
		ReplyFunc: g.reply,
		StatusFunc: func(key string) (SessionStatus, error) {
			return SessionStatus{Model: "openai/gpt-4o", Messages: 7}, nil
		},
	}
	r, rec := newTestRouter(t, agents, Options{})
	r.Handle("web", msg("c1", "alice", "/status"))
	rep := rec.waitReply(t, "c1")
	for _, want := range []string{"Session: web:alice", "Model: openai/gpt-4o", "Messages: 7", "State: idle"} {
		mustContain(t, rep.Text, want)
	}

	r.Handle("web", msg("m1", "alice", "one"))
	g.waitEntered(t, "one")
	r.Handle("web", msg("m2", "alice", "two"))
	r.Handle("web", msg("c2", "alice", "/status"))
	mustContain(t, rec.waitReply(t, "c2").Text, "State: replying (1 waiting)")
	close(g.release)
	rec.waitReply(t, "m2")
}

func TestHelpAndUnknownCommands(t *testing.T) {
	r, rec := newTestRouter(t, &fakeAgents{}, Options{})
	r.Handle("web", msg("h1", "alice", "/help"))
	help := rec.waitReply(t, "h1").Text
	for _, want := range []string{"/new", "/reset", "/model", "/status", "/stop", "/help"} {
		mustContain(t, help, want)
	}
	r.Handle("web", msg("u1", "alice", "/frobnicate now"))
	if rep := rec.waitReply(t, "u1"); rep.Text != "Unknown command /frobnicate. Try /help." || rep.Kind != shared.KindNotice {
		t.Errorf("unknown command answered %+v", rep)
	}
}

func TestSlashTextThatIsNotACommandGoesToTheAgent(t *testing.T) {
	var mu sync.Mutex
	var got []string
	agents := &fakeAgents{ReplyFunc: func(_ context.Context, _, text string) (string, error) {
		mu.Lock()
		got = append(got, text)
		mu.Unlock()
		return "ok", nil
	}}
	r, rec := newTestRouter(t, agents, Options{})
	texts := []string{"/path/to/file", "/ 2", "/", "/2 apples", "/usr/bin/env is where?"}
	for i, text := range texts {
		r.Handle("web", msg(fmt.Sprint("m", i), fmt.Sprint("s", i), text))
	}
	rec.waitReplies(t, len(texts))
	for i := range texts {
		if rep := rec.reply(t, fmt.Sprint("m", i)); rep.Kind != shared.KindReply || rep.Text != "ok" {
			t.Errorf("%q answered %+v, want the agent's reply", texts[i], rep)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(texts) {
		t.Errorf("agent got %q, want all of %q", got, texts)
	}
}

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		text, name, arg string
		ok              bool
	}{
		{"/new", "new", "", true},
		{"/Model  openai/gpt-4o ", "model", "openai/gpt-4o", true},
		{"/model@bot echo/echo", "model", "echo/echo", true},
		{"/path/to/file", "", "", false},
		{"/ 2", "", "", false},
		{"/", "", "", false},
		{"//new", "", "", false},
		{"/9lives", "", "", false},
		{"hello /new", "", "", false},
	} {
		name, arg, ok := parseCommand(tc.text)
		if name != tc.name || arg != tc.arg || ok != tc.ok {
			t.Errorf("parseCommand(%q) = %q, %q, %v; want %q, %q, %v", tc.text, name, arg, ok, tc.name, tc.arg, tc.ok)
		}
	}
}

func TestKey(t *testing.T) {
	r := New(Options{Agents: &fakeAgents{}, Sender: &recorder{}})
	r.SetScope("discord", ScopeUser)
	for _, tc := range []struct {
		name, platform string
		m              shared.Message
		want           string
	}{
		{"conversation", "web", shared.Message{ConversationID: "c1", UserID: "u1"}, "web:c1"},
		{"thread", "web", shared.Message{ConversationID: "c1", ThreadID: "t1", UserID: "u1"}, "web:c1:t1"},
		{"thread is the conversation", "web", shared.Message{ConversationID: "c1", ThreadID: "c1"}, "web:c1"},
		{"conversation scope ignores the user in groups", "web", shared.Message{ConversationID: "g1", UserID: "u1"}, "web:g1"},
		{"user scope in a group", "discord", shared.Message{ConversationID: "g1", UserID: "u1"}, "discord:g1:u:u1"},
		{"user scope in a group thread", "discord", shared.Message{ConversationID: "g1", ThreadID: "t1", UserID: "u2"}, "discord:g1:t1:u:u2"},
		{"user scope in a direct message", "discord", shared.Message{ConversationID: "dm1", UserID: "u1", Direct: true}, "discord:dm1"},
		{"user scope without a user", "discord", shared.Message{ConversationID: "g1"}, "discord:g1"},
	} {
		if got := r.Key(tc.platform, &tc.m); got != tc.want {
			t.Errorf("%s: Key = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestUserScopeGivesGroupMembersTheirOwnSessions(t *testing.T) {
	g := newGate()
	r, rec := newTestRouter(t, &fakeAgents{ReplyFunc: g.reply}, Options{})
	r.SetScope("discord", ScopeUser)
	r.Handle("discord", &shared.Message{ID: "a", ConversationID: "g1", UserID: "u1", Text: "from u1"})
	r.Handle("discord", &shared.Message{ID: "b", ConversationID: "g1", UserID: "u2", Text: "from u2"})
	// Separate sessions: both run at once rather than one queued.
	waitFor(t, "both users' replies to run", func() bool { a, _ := g.stats(); return a == 2 })
	close(g.release)
	rec.waitReply(t, "a")
	rec.waitReply(t, "b")
}

func TestCloseLetsRunningRepliesFinish(t *testing.T) {
	g := newGate()
	r, rec := newTestRouter(t, &fakeAgents{ReplyFunc: g.reply}, Options{})
	r.Handle("web", msg("m1", "alice", "one"))
	g.waitEntered(t, "one")
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		r.Close(ctx)
	}()
	// Messages after Close get an error reply and never reach the agent.
	waitFor(t, "Close to start", func() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.closing })
	r.Handle("web", msg("late", "bob", "late"))
	if rep := rec.waitReply(t, "late"); rep.Kind != shared.KindError {
		t.Errorf("message after Close got %+v", rep)
	} else {
		mustContain(t, rep.Text, "shutting down")
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a reply was running and its ctx had time left")
	default:
	}
	close(g.release)
	select {
	case <-closed:
	case <-time.After(waitTimeout):
		t.Fatal("Close did not return after the reply finished")
	}
	if rep := rec.reply(t, "m1"); rep.Text != "echo: one" || rep.Kind != shared.KindReply {
		t.Errorf("running reply got %+v, want the agent's answer", rep)
	}
	if g.saw("late") != 0 {
		t.Error("a message after Close reached the agent")
	}
}

func TestCloseCancelsWhatOutlivesItsContext(t *testing.T) {
	g := newGate()
	r, rec := newTestRouter(t, &fakeAgents{ReplyFunc: g.reply}, Options{MaxConcurrent: 1})
	r.Handle("web", msg("m1", "alice", "one"))
	g.waitEntered(t, "one")
	r.Handle("web", msg("m2", "alice", "two")) // queued behind m1
	r.Handle("web", msg("b1", "bob", "b"))     // waiting for a slot
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	closed := make(chan struct{})
	go func() { r.Close(ctx); close(closed) }() // the gate is never released
	select {
	case <-closed:
	case <-time.After(waitTimeout):
		close(g.release) // let the test end
		<-closed
		t.Fatal("Close did not return: a queued reply ran after the shutdown cancel")
	}
	const shutdown = "The gateway is shutting down; this reply was cancelled."
	for _, id := range []string{"m1", "m2", "b1"} {
		if rep := rec.reply(t, id); rep.Text != shutdown || rep.Kind != shared.KindNotice {
			t.Errorf("%s got %+v, want the shutdown notice", id, rep)
		}
	}
	if !g.wasCanceled("one") {
		t.Error("the running reply's ctx was not cancelled")
	}
	// Queued replies are not started after the shutdown cancel.
	if g.saw("two") != 0 || g.saw("b") != 0 {
		t.Errorf("agent started queued replies after shutdown: two=%d b=%d", g.saw("two"), g.saw("b"))
	}
}

type userErr struct{ msg string }

func (e userErr) Error() string       { return "internal: " + e.msg }
func (e userErr) UserMessage() string { return e.msg }

func TestAgentErrors(t *testing.T) {
	agents := &fakeAgents{ReplyFunc: func(_ context.Context, _, text string) (string, error) {
		switch text {
		case "user":
			return "", fmt.Errorf("provider: %w", userErr{"The model is overloaded; try again in a minute."})
		default:
			return "", errors.New("dial tcp: connection refused")
		}
	}}
	r, rec := newTestRouter(t, agents, Options{})
	r.Handle("web", msg("m1", "a", "user"))
	r.Handle("web", msg("m2", "b", "plain"))
	if rep := rec.waitReply(t, "m1"); rep.Kind != shared.KindError || rep.Text != "The model is overloaded; try again in a minute." {
		t.Errorf("UserError shown as %+v", rep)
	}
	if rep := rec.waitReply(t, "m2"); rep.Kind != shared.KindError || rep.Text != "The agent could not reply: dial tcp: connection refused" {
		t.Errorf("plain error shown as %+v", rep)
	}
}

func TestReplyTimeout(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply func(ctx context.Context, _, _ string) (string, error)
	}{
		{"agent returns ctx error", func(ctx context.Context, _, _ string) (string, error) {
			<-ctx.Done()
			return "", fmt.Errorf("request: %w", ctx.Err())
		}},
		{"agent returns another error", func(ctx context.Context, _, _ string) (string, error) {
			<-ctx.Done()
			return "", errors.New("stream reset by peer")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var observed error
			var mu sync.Mutex
			r, rec := newTestRouter(t, &fakeAgents{ReplyFunc: tc.reply}, Options{
				ReplyTimeout: 50 * time.Millisecond,
				Observe: func(platform string, _ time.Duration, err error) {
					mu.Lock()
					observed = err
					mu.Unlock()
				},
			})
			r.Handle("web", msg("m1", "alice", "slow"))
			rep := rec.waitReply(t, "m1")
			if rep.Kind != shared.KindError || rep.Text != "The agent did not reply within 50ms." {
				t.Errorf("timed-out reply = %+v", rep)
			}
			mustContain(t, rep.Text, "did not reply within")
			waitFor(t, "Observe", func() bool { mu.Lock(); defer mu.Unlock(); return observed != nil })
		})
	}
}

func TestTypingWhileReplying(t *testing.T) {
	g := newGate()
	r, rec := newTestRouter(t, &fakeAgents{ReplyFunc: g.reply}, Options{TypingDelay: time.Millisecond, TypingInterval: 5 * time.Millisecond})
	r.Handle("web", &shared.Message{ID: "m1", ConversationID: "c", ThreadID: "t", Text: "one"})
	g.waitEntered(t, "one")
	waitFor(t, "the typing indicator to be refreshed", func() bool { return rec.typingCalls() >= 3 })
	close(g.release)
	rec.waitReply(t, "m1")
	waitFor(t, "the session to go idle", func() bool { b, _ := r.Busy("web:c:t"); return !b })
	n := rec.typingCalls()
	time.Sleep(30 * time.Millisecond) // several intervals
	if after := rec.typingCalls(); after != n {
		t.Errorf("typing continued after the reply: %d → %d calls", n, after)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.typing[0] != (shared.Conversation{ConversationID: "c", ThreadID: "t"}) {
		t.Errorf("typing in %+v", rec.typing[0])
	}
}

func TestFastReplyShowsNoTypingIndicator(t *testing.T) {
	// A delay no reply in this test comes close to: had the indicator been
	// shown at once, the recorder would have a call.
	r, rec := newTestRouter(t, &fakeAgents{}, Options{TypingDelay: time.Hour})
	for i := range 20 {
		r.Handle("web", msg(fmt.Sprintf("m%d", i), fmt.Sprintf("c%d", i), "quick"))
	}
	rec.waitReplies(t, 20)
	if n := rec.typingCalls(); n != 0 {
		t.Fatalf("%d typing calls for replies faster than TypingDelay", n)
	}
}
