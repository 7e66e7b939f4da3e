package shared_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/plughost/gateway/shared"
)

// transcriptResult is what a plugin's AskTranscript returned.
type transcriptResult struct {
	t   shared.Transcript
	err error
}

// askingFake is a plugin that asks the host for conv's transcript once it
// is connected, and reports the answer.
func askingFake(conv shared.Conversation, out chan<- transcriptResult) *shared.FakePlatform {
	return &shared.FakePlatform{RunFunc: connectedFake(func(ctx context.Context, events chan<- shared.Event) error {
		t, err := shared.AskTranscript(ctx, events, conv)
		out <- transcriptResult{t, err}
		<-ctx.Done()
		return nil
	})}
}

func awaitTranscript(t *testing.T, out <-chan transcriptResult) transcriptResult {
	t.Helper()
	select {
	case r := <-out:
		return r
	case <-time.After(waitTimeout):
		t.Fatal("AskTranscript did not return")
		return transcriptResult{}
	}
}

// Protocol 2 carries a transcript request to the host and its answer (or
// the host's error) back to the plugin.
func TestTranscriptRequestRoundTripsOverProtocol2(t *testing.T) {
	conv := shared.Conversation{ConversationID: "alice", ThreadID: "t1"}
	want := shared.Transcript{Truncated: true, Messages: []shared.TranscriptMessage{
		{Role: "user", Text: "hi <b>", UnixNano: 1}, {Role: "assistant", Text: "hello ✓", UnixNano: 2}}}
	for _, fail := range []bool{false, true} {
		out := make(chan transcriptResult, 1)
		events := connect(t, shared.TestPlatformV2(t, askingFake(conv, out)))
		ev := nextEvent(t, events)
		if ev.Transcript == nil || ev.Transcript.Conversation != conv {
			t.Fatalf("event = %+v, want a transcript request for %+v", ev, conv)
		}
		if fail {
			ev.Transcript.Answer(shared.Transcript{}, errors.New("store is closed"))
		} else {
			ev.Transcript.Answer(want, nil)
		}
		ev.Transcript.Answer(shared.Transcript{}, errors.New("a second answer is ignored"))
		got := awaitTranscript(t, out)
		var te *shared.TranscriptError
		switch {
		case fail && (!errors.As(got.err, &te) || te.Message != "store is closed"):
			t.Errorf("host error arrived as %v, want a TranscriptError with its message", got.err)
		case !fail && (got.err != nil || !reflect.DeepEqual(got.t, want)):
			t.Errorf("answer = %+v, %v; want %+v", got.t, got.err, want)
		}
	}
}

// Protocol 1 cannot carry the request: the plugin learns it at once.
func TestTranscriptRequestOverProtocol1IsUnsupported(t *testing.T) {
	out := make(chan transcriptResult, 1)
	connect(t, shared.TestPlatform(t, askingFake(shared.Conversation{ConversationID: "a"}, out)))
	if got := awaitTranscript(t, out); !errors.Is(got.err, shared.ErrTranscriptUnsupported) {
		t.Errorf("protocol 1: %v, want ErrTranscriptUnsupported", got.err)
	}
}

// A request the host never answers fails when the stream ends.
func TestTranscriptRequestFailsWhenTheHostLeaves(t *testing.T) {
	out := make(chan transcriptResult, 1)
	c := shared.TestPlatformV2(t, askingFake(shared.Conversation{ConversationID: "a"}, out))
	ctx, cancel := context.WithCancel(context.Background())
	events, done := startRun(ctx, c, 64)
	nextEvent(t, events) // connected
	if ev := nextEvent(t, events); ev.Transcript == nil {
		t.Fatalf("event = %+v, want the request", ev)
	}
	cancel()
	waitRun(t, done)
	if got := awaitTranscript(t, out); got.err == nil {
		t.Error("the request succeeded after the host left")
	}
}
