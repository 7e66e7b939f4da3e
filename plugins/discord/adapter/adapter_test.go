package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"go.uber.org/goleak"

	"github.com/plughost/gateway/plugins/discord/fakediscord"
	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
	"github.com/plughost/gateway/shared/kit/fakekit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fastTiming keeps reconnect tests quick; the logic is the same.
var fastTiming = timing{
	openTimeout:        time.Second,
	backoffBase:        20 * time.Millisecond,
	backoffMax:         200 * time.Millisecond,
	stableAfter:        time.Second,
	stopTimeout:        1500 * time.Millisecond,
	typingWindow:       4 * time.Second,
	channelRate:        kit.Rate{Every: 5 * time.Millisecond, Burst: 5},
	invalidSessionWait: func() time.Duration { return 10 * time.Millisecond },
}

const waitFor = 10 * time.Second

// harness is an adapter served over real gRPC, running against a fake
// Discord.
type harness struct {
	t      *testing.T
	fake   *fakediscord.Server
	client *shared.GRPCClient
	events chan shared.Event
	runErr chan error
}

func newHarness(t *testing.T, fake *fakediscord.Server, cfg map[string]any) *harness {
	t.Helper()
	h := &harness{t: t, fake: fake, events: make(chan shared.Event, 256)}
	h.client = shared.TestPlatform(t, &Adapter{tune: fastTiming})
	full := map[string]any{"token": fakediscord.DefaultToken, "api_url": fake.APIURL}
	for k, v := range cfg {
		full[k] = v
	}
	raw, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.client.Configure(context.Background(), shared.Config{Raw: raw}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return h
}

// run starts Run; the test's cleanup stops it.
func (h *harness) run() *harness {
	ctx, cancel := context.WithCancel(context.Background())
	h.runErr = make(chan error, 1)
	go func() { h.runErr <- h.client.Run(ctx, h.events) }()
	h.t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer scancel()
		_ = h.client.Stop(sctx)
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

func (h *harness) message() *shared.Message {
	h.t.Helper()
	return h.next("a message", func(ev shared.Event) bool { return ev.Message != nil }).Message
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

func (h *harness) fatal(wantCode string) *shared.FatalError {
	h.t.Helper()
	err := h.runResult()
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
	fakekit.Eventually(t, waitFor, what, cond)
}

var alice = &discordgo.User{ID: "42", Username: "alice", GlobalName: "Alice"}

func mentionMsg(channel, text string) *discordgo.Message {
	return &discordgo.Message{ChannelID: channel, GuildID: "G1", Author: alice,
		Content:  "<@" + fakediscord.BotUserID + "> " + text,
		Mentions: []*discordgo.User{{ID: fakediscord.BotUserID}}}
}

func TestMessageInReplyOut(t *testing.T) {
	for _, replyTo := range []bool{true, false} {
		t.Run(map[bool]string{true: "reply_to_message", false: "plain"}[replyTo], func(t *testing.T) {
			fake := fakediscord.New(t)
			h := newHarness(t, fake, map[string]any{"reply_to_message": replyTo}).run()
			h.health(shared.Connected)

			in := mentionMsg("C1", "hello there")
			fake.InjectMessage(in)
			m := h.message()
			want := shared.Message{ID: in.ID, ConversationID: "C1", UserID: "42", UserName: "Alice",
				GuildID: "G1", Text: "hello there", UnixNano: in.Timestamp.UnixNano(),
			} // stream_replies defaults to false: Stream unset
			// The cursor is the session and the seq just after the message.
			if c, ok := parseCursor(m.Cursor); !ok || c.Seq != 2 || c.ResumeURL != fake.GatewayURL {
				t.Fatalf("cursor = %q, want session, seq 2 and the resume URL", m.Cursor)
			}
			want.Cursor = m.Cursor
			if *m != want {
				t.Fatalf("event = %+v\nwant    %+v", *m, want)
			}

			ids, err := h.client.Send(context.Background(), shared.Reply{
				ConversationID: m.ConversationID, ThreadID: m.ThreadID, ReplyToID: m.ID, Text: "hi @everyone", Kind: shared.KindReply})
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			posted := fake.Messages()
			if len(posted) != 1 || len(ids) != 1 || ids[0] != posted[0].ID {
				t.Fatalf("posted %+v, ids %v", posted, ids)
			}
			p := posted[0]
			if p.ChannelID != "C1" || p.Content != "hi @everyone" {
				t.Errorf("posted %+v, want the reply in C1", p)
			}
			if wantRef := map[bool]string{true: in.ID, false: ""}[replyTo]; p.ReplyToID != wantRef {
				t.Errorf("reply reference = %q, want %q", p.ReplyToID, wantRef)
			}
			am := p.AllowedMentions
			if am == nil || len(am.Parse) != 1 || am.Parse[0] != discordgo.AllowedMentionTypeUsers {
				t.Errorf("allowed_mentions = %+v, want only users parsed (no @everyone, no roles)", am)
			}
			if n := fake.Identifies(); n != 1 {
				t.Errorf("identifies = %d, want 1", n)
			}
		})
	}
}

func TestDirectAndThreadMessages(t *testing.T) {
	fake := fakediscord.New(t)
	h := newHarness(t, fake, map[string]any{"allowed_channels": []string{"C1", "D1"}}).run()
	h.health(shared.Connected)

	fake.InjectMessage(&discordgo.Message{ChannelID: "D1", Author: alice, Content: "no mention needed"})
	if m := h.message(); !m.Direct || m.ConversationID != "D1" || m.GuildID != "" || m.Text != "no mention needed" {
		t.Errorf("DM event = %+v", m)
	}

	fake.Dispatch("THREAD_CREATE", &discordgo.Channel{ID: "T7", ParentID: "C1", GuildID: "G1", Type: discordgo.ChannelTypeGuildPublicThread})
	fake.InjectMessage(mentionMsg("T7", "in the thread"))
	m := h.message()
	if m.ThreadID != "T7" || m.ConversationID != "T7" || m.Text != "in the thread" {
		t.Errorf("thread event = %+v, want ThreadID and ConversationID T7", m)
	}
	if _, err := h.client.Send(context.Background(), shared.Reply{ConversationID: m.ConversationID, ThreadID: m.ThreadID, Text: "ok"}); err != nil {
		t.Fatal(err)
	}
	if p := fake.Messages(); len(p) != 1 || p[0].ChannelID != "T7" {
		t.Errorf("posted %+v, want the reply in the thread", p)
	}
}

// TestMentionGating checks that the gating reaches the host as configured:
// the unmentioned message is dropped, the mentioned one after it arrives.
func TestMentionGating(t *testing.T) {
	fake := fakediscord.New(t)
	h := newHarness(t, fake, nil).run()
	h.health(shared.Connected)
	fake.InjectMessage(&discordgo.Message{ChannelID: "C1", GuildID: "G1", Author: alice, Content: "not for the bot"})
	fake.InjectMessage(&discordgo.Message{ChannelID: "C1", GuildID: "G1", Author: &discordgo.User{ID: "5", Bot: true}, Content: "<@" + fakediscord.BotUserID + "> bot"})
	fake.InjectMessage(mentionMsg("C1", "for the bot"))
	if m := h.message(); m.Text != "for the bot" {
		t.Errorf("first delivered message = %q, want the mentioned one", m.Text)
	}
}

func TestBadTokenIsFatalWithoutIdentify(t *testing.T) {
	fake := fakediscord.New(t)
	fake.SetToken("the-real-token")
	h := newHarness(t, fake, nil).run()
	fe := h.fatal(kit.CodeTokenRejected)
	if !strings.Contains(fe.Message, "401") || !strings.Contains(fe.Hint, "token") {
		t.Errorf("fatal = %q / %q, want the 401 and a token hint", fe.Message, fe.Hint)
	}
	if n := fake.Identifies(); n != 0 {
		t.Errorf("identifies = %d, want 0: the REST check must catch a bad token", n)
	}
	if n := fake.Dials(); n != 0 {
		t.Errorf("dialed the gateway %d times with a rejected token", n)
	}
}

func TestTokenRevokedOnLiveSession(t *testing.T) {
	t.Run("close 4004", func(t *testing.T) {
		fake := fakediscord.New(t)
		h := newHarness(t, fake, nil).run()
		h.health(shared.Connected)
		fake.SetToken("reset-by-discord")
		fake.CloseWith(4004, "Authentication failed.")
		fe := h.fatal(kit.CodeTokenRejected)
		if !strings.Contains(fe.Message, "4004") {
			t.Errorf("message = %q, want it to name close 4004", fe.Message)
		}
		if n := fake.Identifies(); n > 2 {
			t.Errorf("identifies = %d, want at most one more after the revocation", n)
		}
	})
	t.Run("drop, then resume refused", func(t *testing.T) {
		fake := fakediscord.New(t)
		h := newHarness(t, fake, nil).run()
		h.health(shared.Connected)
		fake.SetToken("reset-by-discord")
		fake.Drop()
		h.fatal(kit.CodeTokenRejected)
		if n := fake.Identifies(); n > 2 {
			t.Errorf("identifies = %d, want at most one more after the revocation", n)
		}
	})
	t.Run("invalid session, then REST check", func(t *testing.T) {
		fake := fakediscord.New(t)
		h := newHarness(t, fake, nil).run()
		h.health(shared.Connected)
		fake.SetToken("reset-by-discord")
		fake.InvalidateSession(false)
		h.fatal(kit.CodeTokenRejected)
		if n := fake.Identifies(); n != 1 {
			t.Errorf("identifies = %d, want 1: the REST check before re-identifying catches the token", n)
		}
	})
}

func TestFatalCloseCodes(t *testing.T) {
	tests := []struct {
		code     int
		wantCode string
		hint     string
	}{
		{4010, CodeInvalidShard, ""},
		{4011, CodeShardingRequired, "shard"},
		{4012, CodeInvalidAPIVersion, "api_url"},
		{4013, CodeInvalidIntents, ""},
		{4014, CodeDisallowedIntents, "Message Content Intent"},
	}
	for _, tt := range tests {
		t.Run(tt.wantCode, func(t *testing.T) {
			fake := fakediscord.New(t)
			fake.SetIdentifyCloseCode(tt.code)
			h := newHarness(t, fake, nil).run()
			fe := h.fatal(tt.wantCode)
			if !strings.Contains(fe.Hint, tt.hint) {
				t.Errorf("hint = %q, want it to mention %q", fe.Hint, tt.hint)
			}
			if n := fake.Identifies(); n != 1 {
				t.Errorf("identifies = %d, want exactly 1", n)
			}
		})
	}
}

func TestAbruptDropResumes(t *testing.T) {
	fake := fakediscord.New(t)
	h := newHarness(t, fake, nil).run()
	h.health(shared.Connected)
	fake.InjectMessage(mentionMsg("C1", "before"))
	if m := h.message(); m.Text != "before" {
		t.Fatalf("got %q", m.Text)
	}

	fake.Drop()
	fake.InjectMessage(mentionMsg("C1", "during")) // replayed on resume, or live
	h.health(shared.Degraded)
	if m := h.message(); m.Text != "during" {
		t.Fatalf("got %q, want the message sent while disconnected", m.Text)
	}
	eventually(t, "the session is resumed", func() bool { return fake.Connections() == 1 })
	fake.InjectMessage(mentionMsg("C1", "after"))
	if m := h.message(); m.Text != "after" {
		t.Fatalf("got %q", m.Text)
	}
	if r, i := fake.Resumes(), fake.Identifies(); r != 1 || i != 1 {
		t.Errorf("resumes = %d, identifies = %d; want 1 and 1 (resume, not re-identify)", r, i)
	}
}

func TestStaleConnectionIsReplaced(t *testing.T) {
	fake := fakediscord.New(t)
	fake.SetHeartbeatInterval(50 * time.Millisecond)
	h := newHarness(t, fake, nil).run()
	h.health(shared.Connected)
	fake.SetAckHeartbeats(false)
	ev := h.health(shared.Degraded)
	if !strings.Contains(ev.Health.Message, "heartbeat") {
		t.Errorf("degraded message = %q, want it to explain the missing heartbeat ACK", ev.Health.Message)
	}
	fake.SetAckHeartbeats(true)
	h.health(shared.Connected)
	if fake.Resumes() < 1 || fake.Identifies() != 1 {
		t.Errorf("resumes = %d, identifies = %d; want the session resumed", fake.Resumes(), fake.Identifies())
	}
}

func TestSilentGatewayTimesOut(t *testing.T) {
	fake := fakediscord.New(t)
	fake.SetSilent(true)
	h := newHarness(t, fake, nil).run()
	ev := h.health(shared.Degraded)
	if !strings.Contains(ev.Health.Message, "HELLO") {
		t.Errorf("degraded message = %q, want it to say HELLO never came", ev.Health.Message)
	}
	fake.SetSilent(false)
	h.health(shared.Connected)
}

func TestInvalidSessionReidentifies(t *testing.T) {
	fake := fakediscord.New(t)
	h := newHarness(t, fake, nil).run()
	h.health(shared.Connected)
	fake.InvalidateSession(false)
	h.health(shared.Degraded)
	h.health(shared.Connected)
	if n := fake.Identifies(); n != 2 {
		t.Errorf("identifies = %d, want 2", n)
	}
}

func TestIdentifyBudgetExhausted(t *testing.T) {
	fake := fakediscord.New(t)
	fake.SetIdentifyCloseCode(4000) // unknown error: transient, and no session to resume
	h := newHarness(t, fake, map[string]any{"identify_budget": 3}).run()
	fe := h.fatal(CodeIdentifyBudget)
	if !strings.Contains(fe.Message, "3") {
		t.Errorf("message = %q", fe.Message)
	}
	if n := fake.Identifies(); n != 3 {
		t.Errorf("identifies = %d, want exactly the budget, 3", n)
	}
}

func TestSendSplitsLongReplies(t *testing.T) {
	fake := fakediscord.New(t)
	h := newHarness(t, fake, nil)
	text := strings.Repeat("word ", 900) // 4,500 characters
	ids, err := h.client.Send(context.Background(), shared.Reply{ConversationID: "C1", ReplyToID: "m1", Text: text})
	if err != nil {
		t.Fatal(err)
	}
	posted := fake.Messages()
	if len(posted) != 3 || len(ids) != 3 {
		t.Fatalf("posted %d messages, ids %v; want 3", len(posted), ids)
	}
	for i, p := range posted {
		if wantRef := map[bool]string{true: "m1"}[i == 0]; p.ReplyToID != wantRef {
			t.Errorf("chunk %d replies to %q, want %q", i, p.ReplyToID, wantRef)
		}
		if len(p.Content) > maxMessageLength {
			t.Errorf("chunk %d has %d characters", i, len(p.Content))
		}
	}
}

// TestChannelBudget: sends and typing share one budget per channel; a spent
// budget makes a reply wait (never drops it) and skips typing.
func TestChannelBudget(t *testing.T) {
	fake := fakediscord.New(t)
	ctx := context.Background()

	slow := fastTiming
	slow.channelRate = kit.Rate{Every: 20 * time.Millisecond, Burst: 1}
	a := &Adapter{tune: slow}
	raw, _ := json.Marshal(map[string]any{"token": fakediscord.DefaultToken, "api_url": fake.APIURL})
	if err := a.Configure(ctx, shared.Config{Raw: raw}); err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("x", maxMessageLength) + " " + strings.Repeat("y", maxMessageLength) + " " + strings.Repeat("z", 10)
	if ids, err := a.Send(ctx, shared.Reply{ConversationID: "C1", Text: text}); err != nil || len(ids) != 3 {
		t.Fatalf("a 3-part reply over a 1-message budget: ids %v, err %v; want every part posted", ids, err)
	}

	spent := fastTiming
	spent.channelRate = kit.Rate{Every: time.Hour, Burst: 2}
	b := &Adapter{tune: spent}
	if err := b.Configure(ctx, shared.Config{Raw: raw}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Send(ctx, shared.Reply{ConversationID: "C2", Text: "one"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Typing(ctx, shared.Conversation{ConversationID: "C2"}); err != nil {
		t.Fatal(err)
	}
	if got := fake.Typings(); len(got) != 1 {
		t.Fatalf("typings = %v, want one in C2", got)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := b.Send(short, shared.Reply{ConversationID: "C2", Text: "two"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("send on a spent budget = %v, want it to wait until its context ends", err)
	}
	b.typing.forget("C2")
	if err := b.Typing(ctx, shared.Conversation{ConversationID: "C2"}); err != nil {
		t.Fatal(err)
	}
	if got := fake.Typings(); len(got) != 1 {
		t.Fatalf("typings = %v, want the second one skipped: the budget is spent", got)
	}
	if _, err := b.Send(ctx, shared.Reply{ConversationID: "C3", Text: "elsewhere"}); err != nil {
		t.Fatalf("another channel's budget was spent too: %v", err)
	}
	if n := len(fake.Messages()); n != 5 {
		t.Fatalf("%d messages posted, want 5", n)
	}
}

func TestSendWithRejectedTokenIsFatal(t *testing.T) {
	fake := fakediscord.New(t)
	h := newHarness(t, fake, nil).run()
	h.health(shared.Connected)
	fake.SetToken("reset")
	_, err := h.client.Send(context.Background(), shared.Reply{ConversationID: "C1", Text: "hi"})
	var fe *shared.FatalError
	if !errors.As(err, &fe) || fe.Code != kit.CodeTokenRejected {
		t.Fatalf("Send error = %v, want fatal %s", err, kit.CodeTokenRejected)
	}
	h.fatal(kit.CodeTokenRejected) // and Run ends with it
}

func TestSendTransientError(t *testing.T) {
	fake := fakediscord.New(t)
	h := newHarness(t, fake, nil)
	fake.SetRESTStatus("/messages", 403)
	_, err := h.client.Send(context.Background(), shared.Reply{ConversationID: "C1", Text: "hi"})
	var fe *shared.FatalError
	if err == nil || errors.As(err, &fe) {
		t.Fatalf("Send error = %v, want a non-fatal error for a 403", err)
	}
}

func TestTyping(t *testing.T) {
	fake := fakediscord.New(t)
	h := newHarness(t, fake, nil)
	ctx := context.Background()
	for range 3 {
		if err := h.client.Typing(ctx, shared.Conversation{ConversationID: "C1"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := fake.Typings(); len(got) != 1 || got[0] != "C1" {
		t.Errorf("typings = %v, want one in C1 (repeats within the window are skipped)", got)
	}
	if _, err := h.client.Send(ctx, shared.Reply{ConversationID: "C1", Text: "done"}); err != nil {
		t.Fatal(err)
	}
	_ = h.client.Typing(ctx, shared.Conversation{ConversationID: "C1"})
	if got := fake.Typings(); len(got) != 2 {
		t.Errorf("typings = %v, want a fresh indicator after a reply was sent", got)
	}

	off := newHarness(t, fake, map[string]any{"typing": false})
	_ = off.client.Typing(ctx, shared.Conversation{ConversationID: "C2"})
	if got := fake.Typings(); len(got) != 2 {
		t.Errorf("typings = %v, want none with typing = false", got)
	}
}

func TestStopIsPrompt(t *testing.T) {
	fake := fakediscord.New(t)
	h := newHarness(t, fake, nil).run()
	h.health(shared.Connected)
	start := time.Now()
	if err := h.client.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := h.runResult(); err != nil {
		t.Fatalf("Run returned %v after Stop, want nil", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Stop took %v, want well under 2s", d)
	}
	eventually(t, "the gateway connection is closed", func() bool { return fake.Connections() == 0 })
}

func TestStopDuringBackoff(t *testing.T) {
	fake := fakediscord.New(t)
	fake.SetSilent(true)
	a := &Adapter{tune: fastTiming}
	a.tune.openTimeout = time.Minute // stuck in a hanging handshake
	client := shared.TestPlatform(t, a)
	raw, _ := json.Marshal(map[string]any{"token": fakediscord.DefaultToken, "api_url": fake.APIURL})
	if err := client.Configure(context.Background(), shared.Config{Raw: raw}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- client.Run(context.Background(), make(chan shared.Event, 16)) }()
	eventually(t, "the gateway is dialed", func() bool { return fake.Dials() > 0 })
	start := time.Now()
	if err := client.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run still running 2s after Stop")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Stop took %v", d)
	}
}

func TestTransientRESTFailureRecovers(t *testing.T) {
	fake := fakediscord.New(t)
	fake.SetRESTStatus("/users/@me", 500)
	h := newHarness(t, fake, nil).run()
	ev := h.health(shared.Degraded)
	if !strings.Contains(ev.Health.Message, "500") {
		t.Errorf("degraded message = %q, want the HTTP 500", ev.Health.Message)
	}
	fake.SetRESTStatus("/users/@me", 0)
	h.health(shared.Connected)
	if n := fake.Identifies(); n != 1 {
		t.Errorf("identifies = %d, want 1", n)
	}
}
