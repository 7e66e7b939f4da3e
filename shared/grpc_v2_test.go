package shared_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/plughost/gateway/shared"
)

// connect runs c until the end of the test and waits for the plugin's
// Connected event; it returns the events that follow.
func connect(t *testing.T, c shared.Platform) <-chan shared.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	events, done := startRun(ctx, c, 64)
	t.Cleanup(func() {
		cancel()
		waitRun(t, done)
	})
	if ev := nextEvent(t, events); ev.Health == nil || ev.Health.State != shared.Connected {
		t.Fatalf("first event = %+v, want Connected", ev)
	}
	return events
}

// connectedFake is a FakePlatform whose Run reports Connected, then runs fn.
func connectedFake(fn func(ctx context.Context, events chan<- shared.Event) error) func(context.Context, chan<- shared.Event) error {
	return func(ctx context.Context, events chan<- shared.Event) error {
		events <- shared.Event{Health: &shared.Health{State: shared.Connected}}
		return fn(ctx, events)
	}
}

func TestProtocolVersions(t *testing.T) {
	if c := shared.TestPlatformV2(t, &shared.FakePlatform{}); c.Protocol() != 2 {
		t.Errorf("TestPlatformV2 speaks %d, want 2", c.Protocol())
	}
	if c := shared.TestPlatform(t, &shared.FakePlatform{}); c.Protocol() != 1 || c.Streams() {
		t.Errorf("TestPlatform speaks %d (streams %v), want 1 without streaming", c.Protocol(), c.Streams())
	}
}

// TestDeliverWaitsForTheHostsAck: with protocol 2, Deliver returns only once
// the host acknowledged the message, and with the host's error when it
// could not take it.
func TestDeliverWaitsForTheHostsAck(t *testing.T) {
	delivered := make(chan error, 2)
	c := shared.TestPlatformV2(t, &shared.FakePlatform{RunFunc: connectedFake(func(ctx context.Context, events chan<- shared.Event) error {
		for _, id := range []string{"1", "2"} {
			delivered <- shared.Deliver(ctx, events, &shared.Message{ID: id, Cursor: "after-" + id})
		}
		<-ctx.Done()
		return nil
	})})
	events := connect(t, c)
	ev := nextEvent(t, events)
	if ev.Message == nil || ev.Message.ID != "1" || ev.Message.Cursor != "after-1" || !ev.WantsAck() {
		t.Fatalf("event = %+v (wants ack %v), want message 1 with its cursor, waiting for an ack", ev.Message, ev.WantsAck())
	}
	select {
	case err := <-delivered:
		t.Fatalf("Deliver returned %v before the host acknowledged", err)
	default:
	}
	ev.Ack(nil)
	ev.Ack(errors.New("a second ack is ignored"))
	if err := <-delivered; err != nil {
		t.Fatalf("Deliver = %v, want nil", err)
	}
	ev = nextEvent(t, events)
	ev.Ack(errors.New("disk full"))
	if err := <-delivered; err == nil {
		t.Fatal("Deliver = nil, want the host's error")
	}
}

// TestCheckpointReachesOnlyHostsThatKeepCursors: with protocol 2 a
// checkpoint arrives as a message with only a cursor, and Checkpoint waits
// for the host's ack; a protocol 1 host keeps no cursors, so the plugin's
// side takes it at once and sends nothing.
func TestCheckpointReachesOnlyHostsThatKeepCursors(t *testing.T) {
	checkpointed := make(chan error, 1)
	plugin := func() *shared.FakePlatform {
		return &shared.FakePlatform{RunFunc: connectedFake(func(ctx context.Context, events chan<- shared.Event) error {
			checkpointed <- shared.Checkpoint(ctx, events, "s42")
			checkpointed <- shared.Deliver(ctx, events, &shared.Message{ID: "1", Text: "after"})
			<-ctx.Done()
			return nil
		})}
	}
	events := connect(t, shared.TestPlatformV2(t, plugin()))
	ev := nextEvent(t, events)
	if ev.Message == nil || !ev.Message.IsCheckpoint() || ev.Message.Cursor != "s42" || !ev.WantsAck() {
		t.Fatalf("event = %+v, want a checkpoint at s42 waiting for an ack", ev.Message)
	}
	select {
	case err := <-checkpointed:
		t.Fatalf("Checkpoint returned %v before the host acknowledged", err)
	default:
	}
	ev.Ack(nil)
	if err := <-checkpointed; err != nil {
		t.Fatalf("Checkpoint = %v, want nil", err)
	}
	nextEvent(t, events).Ack(nil)
	<-checkpointed

	events = connect(t, shared.TestPlatform(t, plugin()))
	if err := <-checkpointed; err != nil {
		t.Fatalf("Checkpoint with protocol 1 = %v, want nil at once", err)
	}
	if ev := nextEvent(t, events); ev.Message == nil || ev.Message.ID != "1" {
		t.Fatalf("event = %+v, want message 1: the checkpoint must not reach a protocol 1 host", ev)
	}
	<-checkpointed
}

// TestDeliverFailsWhenTheHostGoes: a message the host never acknowledged is
// not taken, so the plugin must not confirm it.
func TestDeliverFailsWhenTheHostGoes(t *testing.T) {
	delivered := make(chan error, 1)
	c := shared.TestPlatformV2(t, &shared.FakePlatform{RunFunc: connectedFake(func(ctx context.Context, events chan<- shared.Event) error {
		delivered <- shared.Deliver(context.Background(), events, &shared.Message{ID: "1"})
		return nil
	})})
	ctx, cancel := context.WithCancel(context.Background())
	events, done := startRun(ctx, c, 8)
	nextEvent(t, events) // connected
	if ev := nextEvent(t, events); ev.Message == nil {
		t.Fatalf("event = %+v, want the message", ev)
	}
	cancel()
	waitRun(t, done)
	if err := <-delivered; err == nil {
		t.Fatal("Deliver = nil after the host left without acknowledging")
	}
}

// streamer is a FakePlatform that also streams.
type streamer struct {
	shared.FakePlatform
	streams bool
	mu      sync.Mutex
	parts   []shared.ReplyPart
	sent    []shared.Reply
}

func (s *streamer) Streams() bool { return s.streams }

func (s *streamer) SendPart(_ context.Context, p shared.ReplyPart) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parts = append(s.parts, p)
	if p.Phase == shared.PhaseEnd {
		return []string{"posted"}, nil
	}
	return nil, nil
}

func TestStreamedReplyPartsArriveInOrder(t *testing.T) {
	s := &streamer{streams: true}
	c := shared.TestPlatformV2(t, s)
	if err := c.Configure(context.Background(), shared.Config{}); err != nil {
		t.Fatal(err)
	}
	if !c.Streams() {
		t.Fatal("Streams = false for a streaming plugin")
	}
	connect(t, c)
	r := shared.Reply{ConversationID: "c", ReplyToID: "in", Kind: shared.KindReply}
	var want []shared.ReplyPart
	send := func(phase shared.ReplyPhase, text string) []string {
		r.Text = text
		p := shared.ReplyPart{ReplyID: "r1", Phase: phase, Reply: r}
		want = append(want, p)
		ids, err := c.SendPart(context.Background(), p)
		if err != nil {
			t.Fatalf("SendPart %s: %v", phase, err)
		}
		return ids
	}
	send(shared.PhaseStart, "")
	for _, d := range []string{"a", "b", "c"} {
		send(shared.PhaseDelta, d)
	}
	if ids := send(shared.PhaseEnd, "abc"); !reflect.DeepEqual(ids, []string{"posted"}) {
		t.Errorf("End ids = %v", ids)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !reflect.DeepEqual(s.parts, want) {
		t.Errorf("plugin got\n%+v\nwant\n%+v", s.parts, want)
	}
}

// TestNonStreamingPluginGetsOnlyTheFinalText: a plugin whose config turns
// streaming off (or that is no Streamer) gets one Send with the whole reply.
func TestNonStreamingPluginGetsOnlyTheFinalText(t *testing.T) {
	var mu sync.Mutex
	var sent []shared.Reply
	s := &streamer{FakePlatform: shared.FakePlatform{SendFunc: func(_ context.Context, r shared.Reply) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, r)
		return []string{"m"}, nil
	}}}
	for _, c := range []shared.PluginConn{shared.TestPlatformV2(t, s), shared.TestPlatform(t, s)} {
		if err := c.Configure(context.Background(), shared.Config{}); err != nil {
			t.Fatal(err)
		}
		connect(t, c)
		r := shared.Reply{ConversationID: "c", Text: "", Kind: shared.KindReply}
		for _, p := range []shared.ReplyPhase{shared.PhaseStart, shared.PhaseDelta, shared.PhaseEnd} {
			r.Text = map[shared.ReplyPhase]string{shared.PhaseDelta: "par", shared.PhaseEnd: "partial text"}[p]
			if _, err := c.SendPart(context.Background(), shared.ReplyPart{ReplyID: "r", Phase: p, Reply: r}); err != nil {
				t.Fatalf("protocol %d: SendPart %s: %v", c.Protocol(), p, err)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 2 || sent[0].Text != "partial text" || sent[1].Text != "partial text" || len(s.parts) != 0 {
		t.Errorf("plugin got Send %+v and parts %+v, want one whole reply per protocol", sent, s.parts)
	}
}

func TestTypingV2IsAFrame(t *testing.T) {
	got := make(chan shared.Conversation, 1)
	c := shared.TestPlatformV2(t, &shared.FakePlatform{TypingFunc: func(_ context.Context, conv shared.Conversation) error {
		got <- conv
		return errors.New("logged by the plugin, not returned")
	}})
	connect(t, c)
	want := shared.Conversation{ConversationID: "c", ThreadID: "t"}
	if err := c.Typing(context.Background(), want); err != nil {
		t.Fatalf("Typing: %v", err)
	}
	if conv := <-got; conv != want {
		t.Errorf("plugin got %+v, want %+v", conv, want)
	}
}

// TestHeldConversationHoldsUpNoOther: a Send the platform holds (a channel
// rate-limited for a minute) delays only its own conversation's replies;
// every other conversation's reply is sent meanwhile. With conversations
// sharing a fixed set of workers, some of them would wait behind it.
func TestHeldConversationHoldsUpNoOther(t *testing.T) {
	release := make(chan struct{})
	c := shared.TestPlatformV2(t, &shared.FakePlatform{
		RunFunc: connectedFake(func(ctx context.Context, _ chan<- shared.Event) error {
			<-ctx.Done()
			return nil
		}),
		SendFunc: func(ctx context.Context, r shared.Reply) ([]string, error) {
			if r.ConversationID == "held" {
				select {
				case <-release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return []string{r.ConversationID}, nil
		},
	})
	connect(t, c)
	heldDone := make(chan error, 1)
	go func() {
		_, err := c.Send(context.Background(), shared.Reply{ConversationID: "held", Text: "x"})
		heldDone <- err
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			conv := fmt.Sprintf("c%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ids, err := c.Send(ctx, shared.Reply{ConversationID: conv, Text: "x"})
			if err != nil || len(ids) != 1 || ids[0] != conv {
				errs <- fmt.Errorf("%s: ids %v, err %v", conv, ids, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a reply waited behind the held conversation: %v", err)
	}
	select {
	case err := <-heldDone:
		t.Fatalf("the held Send returned before it was released: %v", err)
	default:
	}
	close(release)
	if err := <-heldDone; err != nil {
		t.Fatalf("held Send: %v", err)
	}
}
