package adapter

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/plughost/gateway/plugins/matrix/fakematrix"
	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
	"github.com/plughost/gateway/shared/kit/fakekit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// configured returns an adapter configured against fake, over the real
// gRPC contract.
func configured(t *testing.T, fake *fakematrix.Server, token string) (*Adapter, *shared.GRPCClient) {
	t.Helper()
	a := &Adapter{tune: timing{pollTimeout: 200 * time.Millisecond, backoffBase: 10 * time.Millisecond,
		backoffMax: 50 * time.Millisecond, stopTimeout: time.Second, sendRetries: 4}}
	client := shared.TestPlatform(t, a)
	raw, _ := json.Marshal(map[string]any{"homeserver": fake.URL, "access_token": token})
	if err := client.Configure(context.Background(), shared.Config{Raw: raw, Logger: hclog.NewNullLogger()}); err != nil {
		t.Fatal(err)
	}
	return a, client
}

func TestSendRetriedWithTheSameTransactionIsPostedOnce(t *testing.T) {
	fake := fakematrix.New(t)
	room := fake.CreateRoom("!dm:fake.local", false, "@alice:fake.local")
	_, client := configured(t, fake, fakematrix.DefaultToken)
	reply := shared.Reply{ConversationID: room, ReplyToID: "$q", Text: "the answer", Kind: shared.KindReply}
	first, err := client.Send(context.Background(), reply)
	if err != nil {
		t.Fatal(err)
	}
	// A send whose answer was lost (the host retries after a restart) uses
	// the same transaction id, and the homeserver posts nothing new.
	second, err := client.Send(context.Background(), reply)
	if err != nil {
		t.Fatal(err)
	}
	if len(fake.Sent()) != 1 || first[0] != second[0] {
		t.Fatalf("the same reply sent twice posted %d events (%v, %v), want 1", len(fake.Sent()), first, second)
	}
}

func TestSendRetriesServerErrorsAndRefusesEncryptedRooms(t *testing.T) {
	fake := fakematrix.New(t)
	room := fake.CreateRoom("!dm:fake.local", false, "@alice:fake.local")
	enc := fake.CreateRoom("!enc:fake.local", true, "@alice:fake.local")
	_, client := configured(t, fake, fakematrix.DefaultToken)
	fake.FailNext("/send/", 502, 500)
	if _, err := client.Send(context.Background(), shared.Reply{ConversationID: room, Text: "hi", Kind: shared.KindReply}); err != nil {
		t.Fatalf("a send after two 5xx answers failed: %v", err)
	}
	if n := len(fake.Sent()); n != 1 {
		t.Fatalf("%d events posted after retries, want 1", n)
	}
	_, err := client.Send(context.Background(), shared.Reply{ConversationID: enc, Text: "secret", Kind: shared.KindReply})
	if err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("a send into an encrypted room: %v, want a refusal naming encryption", err)
	}
	if n := len(fake.Sent()); n != 1 {
		t.Fatalf("something was posted into the encrypted room")
	}
}

func TestSendWithRejectedTokenIsFatal(t *testing.T) {
	fake := fakematrix.New(t)
	room := fake.CreateRoom("!dm:fake.local", false, "@alice:fake.local")
	_, client := configured(t, fake, "wrong")
	_, err := client.Send(context.Background(), shared.Reply{ConversationID: room, Text: "hi", Kind: shared.KindReply})
	var fe *shared.FatalError
	if !asFatalErr(err, &fe) || fe.Code != kit.CodeTokenRejected || !strings.Contains(fe.Hint, "MATRIX_TOKEN") {
		t.Fatalf("send with a rejected token: %v, want a fatal token_rejected naming MATRIX_TOKEN", err)
	}
}

func TestRateLimitHoldsOnlyThatRoom(t *testing.T) {
	fake := fakematrix.New(t)
	busy := fake.CreateRoom("!busy:fake.local", false, "@alice:fake.local")
	quiet := fake.CreateRoom("!quiet:fake.local", false, "@bob:fake.local")
	_, client := configured(t, fake, fakematrix.DefaultToken)
	fake.RateLimit("/rooms/"+busy+"/send/", 60_000)
	ctx, cancel := context.WithCancel(context.Background())
	held := make(chan error, 1)
	go func() {
		_, err := client.Send(ctx, shared.Reply{ConversationID: busy, Text: "later", Kind: shared.KindReply})
		held <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for fake.RateLimitHits() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the busy room was never rate limited")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The busy room waits out its minute; the quiet room is not held up.
	qctx, qcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer qcancel()
	if _, err := client.Send(qctx, shared.Reply{ConversationID: quiet, Text: "now", Kind: shared.KindReply}); err != nil {
		t.Fatalf("a send to another room while one is rate limited: %v", err)
	}
	if sent := fake.Sent(); len(sent) != 1 || sent[0].Body() != "now" {
		t.Fatalf("posted %+v, want only the quiet room's reply", sent)
	}
	cancel()
	if err := <-held; err == nil {
		t.Fatal("the rate-limited send succeeded within its retry_after_ms")
	}
	if n := fake.RateLimitHits(); n != 1 {
		t.Fatalf("%d requests were answered 429, want 1: the retry_after_ms was not waited out", n)
	}
}

func asFatalErr(err error, fe **shared.FatalError) bool {
	f, ok := err.(*shared.FatalError)
	if ok {
		*fe = f
	}
	return ok
}

func TestTypingNotifiesTheRoom(t *testing.T) {
	fake := fakematrix.New(t)
	room := fake.CreateRoom("!dm:fake.local", false, "@alice:fake.local")
	a, client := configured(t, fake, fakematrix.DefaultToken)
	if err := a.login(context.Background(), a.client); err != nil {
		t.Fatal(err)
	}
	if err := client.Typing(context.Background(), shared.Conversation{ConversationID: room}); err != nil {
		t.Fatal(err)
	}
	if fake.Typings() != 1 {
		t.Fatalf("%d typing notifications, want 1", fake.Typings())
	}
}

func TestReplyContentThreadsRepliesAndNotices(t *testing.T) {
	r := shared.Reply{ConversationID: "!r", ThreadID: "$root", ReplyToID: "$q", Text: "x", Kind: shared.KindNotice}
	first := replyContent(r, "part one", 0)
	if first.MsgType != "m.notice" || first.RelatesTo == nil || first.RelatesTo.Type != "m.thread" ||
		first.RelatesTo.EventID != "$root" || first.RelatesTo.InReplyTo.EventID != "$q" {
		t.Fatalf("first part in a thread: %+v", first.RelatesTo)
	}
	second := replyContent(r, "part two", 1)
	if second.RelatesTo.EventID != "$root" || !second.RelatesTo.IsFallingBack {
		t.Fatalf("a later part must stay in the thread as a fallback reply: %+v", second.RelatesTo)
	}
	plain := replyContent(shared.Reply{Kind: shared.KindReply}, "no markdown here", 0)
	if plain.FormattedBody != "" || plain.RelatesTo != nil {
		t.Fatalf("plain text got a formatted body %q or a relation", plain.FormattedBody)
	}
	html := replyContent(shared.Reply{Kind: shared.KindReply}, "<script>alert(1)</script> *hi*", 0)
	if strings.Contains(html.FormattedBody, "<script>") {
		t.Fatalf("HTML written by the agent passed into formatted_body: %q", html.FormattedBody)
	}
}

func TestTransactionIDsAreStablePerPart(t *testing.T) {
	r := shared.Reply{ConversationID: "!r", ReplyToID: "$q", Kind: shared.KindReply}
	if transactionID(r, 0, "a") != transactionID(r, 0, "a") {
		t.Fatal("the same part got two transaction ids")
	}
	if transactionID(r, 0, "a") == transactionID(r, 1, "a") || transactionID(r, 0, "a") == transactionID(r, 0, "b") {
		t.Fatal("different parts share a transaction id")
	}
}

func TestSplitReplyStaysUnderTheLimitAndKeepsUTF8(t *testing.T) {
	long := strings.Repeat("ünïcødé ", 5000) // 2-byte runes, no newlines
	parts := splitReply(long)
	squash := func(s string) string { return strings.Join(strings.Fields(s), "") }
	if len(parts) < 2 || squash(strings.Join(parts, "")) != squash(long) {
		t.Fatalf("%d parts that do not add up to the reply", len(parts))
	}
	for _, p := range parts {
		if len(p) > maxPartBytes || !utf8.ValidString(p) {
			t.Fatalf("a part of %d bytes (valid UTF-8: %v)", len(p), utf8.ValidString(p))
		}
	}
}

func TestMentionDetectionAndStripping(t *testing.T) {
	a := &Adapter{}
	bot := id.UserID("@bot:hs")
	for _, tc := range []struct {
		body string
		want bool
	}{
		{"@bot:hs hello", true},
		{"Gateway Bot: hi", true},
		{"gateway bot, hi", true},
		{"nothing for you", false},
	} {
		msg := &eventContent{Body: tc.body}
		if got := a.mentionsBot(msg.content(), bot, "Gateway Bot"); got != tc.want {
			t.Errorf("mentionsBot(%q) = %v, want %v", tc.body, got, tc.want)
		}
	}
	if got := stripMention("Gateway Bot: /new", bot, "Gateway Bot"); got != "/new" {
		t.Fatalf("stripMention = %q, want /new", got)
	}
	if got := stripMention("@bot:hs /model", bot, "Gateway Bot"); got != "/model" {
		t.Fatalf("stripMention = %q, want /model", got)
	}
}

// configuredWithLog is an adapter configured in-process against fake, its
// log written to logs.
func configuredWithLog(t *testing.T, fake *fakematrix.Server, logs *fakekit.SyncBuffer) *Adapter {
	t.Helper()
	a := &Adapter{tune: defaultTiming}
	raw, _ := json.Marshal(map[string]any{"homeserver": fake.URL, "access_token": fakematrix.DefaultToken})
	if err := a.Configure(context.Background(), shared.Config{Raw: raw, Logger: hclog.New(&hclog.LoggerOptions{Output: logs})}); err != nil {
		t.Fatal(err)
	}
	return a
}

// syncCheckpoint runs handleSync on resp with a host stand-in that takes
// everything, and returns the checkpoint it made ("" for none).
func syncCheckpoint(t *testing.T, a *Adapter, resp *mautrix.RespSync, since string, first bool) string {
	t.Helper()
	events := make(chan shared.Event)
	done := make(chan error, 1)
	go func() { done <- a.handleSync(context.Background(), events, resp, since, first) }()
	cursor := ""
	for {
		select {
		case ev := <-events:
			if ev.Message == nil || !ev.Message.IsCheckpoint() {
				t.Fatalf("handleSync sent %+v, want only a checkpoint", ev)
			}
			cursor = ev.Message.Cursor
			ev.Ack(nil)
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return cursor
		case <-time.After(10 * time.Second):
			t.Fatal("handleSync did not return")
		}
	}
}

// TestSyncWithNothingToAnswerCheckpoints: the first sync (history only)
// moves the host's cursor, so a restart before the first message resumes
// there; so does a later sync that brought events but nothing to answer;
// an empty long poll does not.
func TestSyncWithNothingToAnswerCheckpoints(t *testing.T) {
	fake := fakematrix.New(t)
	a := configuredWithLog(t, fake, &fakekit.SyncBuffer{})
	chatter := func(next string) *mautrix.RespSync {
		return &mautrix.RespSync{NextBatch: next, Rooms: mautrix.RespSyncRooms{Join: map[id.RoomID]*mautrix.SyncJoinedRoom{
			"!room:fake.local": {},
		}}}
	}
	if got := syncCheckpoint(t, a, &mautrix.RespSync{NextBatch: "s5"}, "", true); got != "s5" {
		t.Fatalf("first sync checkpointed %q, want s5", got)
	}
	if got := syncCheckpoint(t, a, chatter("s7"), "s5", false); got != "s7" {
		t.Fatalf("a sync with events for nobody checkpointed %q, want s7", got)
	}
	if got := syncCheckpoint(t, a, &mautrix.RespSync{NextBatch: "s7"}, "s7", false); got != "" {
		t.Fatalf("an empty long poll checkpointed %q, want nothing", got)
	}
}

// TestLimitedTimelineIsReported: a /sync that left out a room's older
// messages (more arrived while the plugin was away than one sync returns)
// is logged as a warning naming the room, never silently.
func TestLimitedTimelineIsReported(t *testing.T) {
	fake := fakematrix.New(t)
	var logs fakekit.SyncBuffer
	a := configuredWithLog(t, fake, &logs)
	resp := &mautrix.RespSync{NextBatch: "s9", Rooms: mautrix.RespSyncRooms{Join: map[id.RoomID]*mautrix.SyncJoinedRoom{
		"!busy:fake.local": {Timeline: mautrix.SyncTimeline{Limited: true, PrevBatch: "p1"}},
	}}}
	syncCheckpoint(t, a, resp, "s1", false)
	if log := logs.String(); !strings.Contains(log, "[WARN]") || !strings.Contains(log, "left out older messages") || !strings.Contains(log, "!busy:fake.local") {
		t.Fatalf("a limited timeline was not reported: %q", log)
	}
	if !strings.Contains(syncFilter, `"timeline":{"limit":100}`) {
		t.Fatalf("the sync filter does not ask for a long timeline: %s", syncFilter)
	}
}
