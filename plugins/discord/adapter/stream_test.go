package adapter

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plughost/gateway/plugins/discord/fakediscord"
	"github.com/plughost/gateway/shared"
)

// streamingAdapter is an adapter configured against fake, called directly.
func streamingAdapter(t *testing.T, fake *fakediscord.Server, cfg map[string]any) *Adapter {
	t.Helper()
	tune := fastTiming
	// Each reading of the clock is a second later: every delta is past
	// edit_interval.
	var mu sync.Mutex
	clock := time.Unix(1_000_000, 0)
	tune.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second)
		return clock
	}
	a := &Adapter{tune: tune}
	full := map[string]any{"token": fakediscord.DefaultToken, "api_url": fake.APIURL, "edit_interval": "1s"}
	for k, v := range cfg {
		full[k] = v
	}
	raw, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Configure(context.Background(), shared.Config{Raw: raw}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop(context.Background()) })
	return a
}

// streamer sends the parts of one reply.
type streamer struct {
	t  *testing.T
	a  *Adapter
	id string
}

func (s streamer) part(phase shared.ReplyPhase, text string, kind shared.ReplyKind) []string {
	s.t.Helper()
	ids, err := s.a.SendPart(context.Background(), shared.ReplyPart{ReplyID: s.id, Phase: phase, Reply: shared.Reply{
		ConversationID: "C1", ReplyToID: "U1", Text: text, Kind: kind}})
	if err != nil {
		s.t.Fatalf("SendPart %s: %v", phase, err)
	}
	return ids
}

// TestStreamedReplyIsEditedInPlace: the first text is posted at once (as a
// reply to the user's message), later text edits it, and the end leaves
// exactly one message showing the final text.
func TestStreamedReplyIsEditedInPlace(t *testing.T) {
	fake := fakediscord.New(t)
	s := streamer{t, streamingAdapter(t, fake, nil), "r1"}
	s.part(shared.PhaseStart, "", shared.KindReply)
	s.part(shared.PhaseDelta, "Hello", shared.KindReply)
	if got := fake.Shown(); len(got) != 1 || got[0].Content != "Hello" || got[0].ReplyToID != "U1" {
		t.Fatalf("after the first delta: %+v, want Hello posted as a reply", got)
	}
	s.part(shared.PhaseDelta, " wor", shared.KindReply)
	ids := s.part(shared.PhaseEnd, "Hello world", shared.KindReply)
	got := fake.Shown()
	if len(got) != 1 || got[0].Content != "Hello world" || len(ids) != 1 || ids[0] != got[0].ID {
		t.Fatalf("after the end: %+v (ids %v), want one message showing the final text", got, ids)
	}
	if n := len(fake.Messages()); n != 1 {
		t.Errorf("%d messages posted, want 1: the final text is an edit, never a second post", n)
	}
}

// TestStreamedReplyPastTheLimitContinuesInANewMessage.
func TestStreamedReplyPastTheLimitContinuesInANewMessage(t *testing.T) {
	fake := fakediscord.New(t)
	s := streamer{t, streamingAdapter(t, fake, nil), "r1"}
	s.part(shared.PhaseStart, "", shared.KindReply)
	long := strings.Repeat("word ", 500) // 2500 characters
	for i := 0; i < len(long); i += 500 {
		s.part(shared.PhaseDelta, long[i:i+500], shared.KindReply)
	}
	s.part(shared.PhaseEnd, long, shared.KindReply)
	got := fake.Shown()
	if len(got) != 2 || len(got[0].Content)+len(got[1].Content) < 2490 || len(fake.Messages()) != 2 {
		t.Fatalf("shown = %d messages, want the reply in 2", len(got))
	}
	for _, m := range got {
		if n := len([]rune(m.Content)); n > 2000 {
			t.Errorf("a message of %d characters", n)
		}
	}
}

// TestRateLimitDuringStreaming: a 429 on an interim edit skips it (the
// budget waits out the retry-after), and the final text still arrives, once.
func TestRateLimitDuringStreaming(t *testing.T) {
	fake := fakediscord.New(t)
	s := streamer{t, streamingAdapter(t, fake, nil), "r1"}
	s.part(shared.PhaseStart, "", shared.KindReply)
	s.part(shared.PhaseDelta, "one", shared.KindReply)
	fake.RateLimit(1, 200*time.Millisecond)
	s.part(shared.PhaseDelta, " two", shared.KindReply)   // 429: skipped
	s.part(shared.PhaseDelta, " three", shared.KindReply) // within the retry-after: skipped
	if got := fake.Shown(); len(got) != 1 || got[0].Content != "one" || fake.Edits() != 0 {
		t.Fatalf("shown %+v after a 429, want the interim edits skipped", got)
	}
	s.part(shared.PhaseEnd, "one two three", shared.KindReply)
	if got := fake.Shown(); len(got) != 1 || got[0].Content != "one two three" || len(fake.Messages()) != 1 {
		t.Fatalf("shown %+v, want the final text in the one message", got)
	}
}

// TestFailedStreamKeepsTheTextAndSaysWhy: /stop (or an error) mid-stream
// leaves what was streamed and says why it ended, in the same message.
func TestFailedStreamKeepsTheTextAndSaysWhy(t *testing.T) {
	fake := fakediscord.New(t)
	s := streamer{t, streamingAdapter(t, fake, nil), "r1"}
	s.part(shared.PhaseStart, "", shared.KindReply)
	s.part(shared.PhaseDelta, "partial", shared.KindReply)
	s.part(shared.PhaseFail, "Stopped.", shared.KindNotice)
	if got := fake.Shown(); len(got) != 1 || got[0].Content != "partial\n\n*Stopped.*" {
		t.Fatalf("shown %+v, want the partial text and why it stopped", got)
	}
}

// TestEndWithoutStartPostsTheWholeReply: a reply that began before this
// plugin process (it was restarted mid-stream) is posted whole at its end.
func TestEndWithoutStartPostsTheWholeReply(t *testing.T) {
	fake := fakediscord.New(t)
	s := streamer{t, streamingAdapter(t, fake, nil), "r1"}
	s.part(shared.PhaseDelta, "lost", shared.KindReply)
	s.part(shared.PhaseEnd, "the whole reply", shared.KindReply)
	if got := fake.Shown(); len(got) != 1 || got[0].Content != "the whole reply" {
		t.Fatalf("shown %+v, want the whole reply once", got)
	}
}

func TestStreamRepliesConfig(t *testing.T) {
	fake := fakediscord.New(t)
	if a := streamingAdapter(t, fake, nil); a.Streams() {
		t.Error("stream_replies defaults to true, want false")
	}
	if a := streamingAdapter(t, fake, map[string]any{"stream_replies": true}); !a.Streams() {
		t.Error("stream_replies = true does not stream")
	}
	if a := streamingAdapter(t, fake, map[string]any{"stream_replies": false}); a.Streams() {
		t.Error("stream_replies = false still streams")
	}
	a := &Adapter{}
	raw, _ := json.Marshal(map[string]any{"token": "t", "edit_interval": "soon"})
	if err := a.Configure(context.Background(), shared.Config{Raw: raw}); err == nil || !strings.Contains(err.Error(), "edit_interval") {
		t.Errorf("Configure with a bad edit_interval = %v, want an error naming it", err)
	}
}
