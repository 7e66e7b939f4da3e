package shared

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-plugin"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/plughost/gateway/shared/proto"
)

// The host side of protocol 2.
//
// Run opens Connect and is the stream's only reader: it forwards messages
// and health to events and completes replies waiting in the pending map
// (keyed by the id each ReplyFrame carries). One writer goroutine per stream
// sends what the host queues on it: acknowledgements, replies, typing. A
// reply is one frame on the queue and one map entry; nothing starts a
// goroutine or a unary call per message.

// ErrStreamClosed is returned by a protocol 2 Send, SendPart or Typing made
// while no Run is connected to the plugin, or cut short by its end.
var ErrStreamClosed = errors.New("the plugin's stream is not connected")

// outQueue is how many frames may wait for the stream's writer.
const outQueue = 1024

// GRPCClientV2 is the host's view of a protocol 2 plugin.
type GRPCClientV2 struct {
	client  pb.PlatformV2Client
	streams atomic.Bool

	mu   sync.Mutex
	link *link // the Connect stream Run is serving; nil when none
}

var _ PluginConn = (*GRPCClientV2)(nil)

// link is one Connect stream.
type link struct {
	out    chan *pb.HostFrame
	done   chan struct{} // closed when the stream has ended
	nextID atomic.Uint64

	mu      sync.Mutex
	pending map[uint64]chan *pb.SendResult
}

// GRPCClient returns the protocol 2 PluginConn backed by the connection.
func (p *GRPCPluginV2) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &GRPCClientV2{client: pb.NewPlatformV2Client(c)}, nil
}

// Protocol implements PluginConn.
func (c *GRPCClientV2) Protocol() int { return 2 }

// Streams implements PluginConn.
func (c *GRPCClientV2) Streams() bool { return c.streams.Load() }

// Describe implements Platform.
func (c *GRPCClientV2) Describe(ctx context.Context) (Description, error) {
	resp, err := c.client.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return Description{}, err
	}
	return descriptionFromProto(resp)
}

// Configure implements Platform.
func (c *GRPCClientV2) Configure(ctx context.Context, cfg Config) error {
	return c.ConfigureWithLevel(ctx, cfg, "")
}

// ConfigureWithLevel implements PluginConn.
func (c *GRPCClientV2) ConfigureWithLevel(ctx context.Context, cfg Config, level string) error {
	resp, err := c.client.Configure(ctx, &pb.ConfigureRequest{ConfigJson: cfg.Raw, LogLevel: level, Cursor: cfg.Cursor,
		Shard: int32(cfg.Shard), ShardCount: int32(cfg.ShardCount)}) //nolint:gosec // bounded by config.MaxShards
	if err != nil {
		return err
	}
	if f := fatalFromProto(resp.GetFatal()); f != nil {
		return f
	}
	c.streams.Store(resp.GetStreams())
	return nil
}

// SetLogLevel implements PluginConn.
func (c *GRPCClientV2) SetLogLevel(ctx context.Context, level string) error {
	_, err := c.client.SetLogLevel(ctx, &pb.SetLogLevelRequest{Level: level})
	return err
}

// Stop implements Platform.
func (c *GRPCClientV2) Stop(ctx context.Context) error {
	_, err := c.client.Stop(ctx, &pb.StopRequest{})
	return err
}

// Run implements Platform: it connects the stream and forwards the plugin's
// events until the stream ends. A message the plugin waits for carries an
// Ack that answers it on the stream. A FATAL health event is forwarded and
// also returned as a *FatalError; a stream that ends cleanly, or because ctx
// was cancelled, returns nil.
func (c *GRPCClientV2) Run(ctx context.Context, events chan<- Event) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.client.Connect(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	l := &link{out: make(chan *pb.HostFrame, outQueue), done: make(chan struct{}), pending: map[uint64]chan *pb.SendResult{}}
	c.mu.Lock()
	c.link = l
	c.mu.Unlock()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		l.writeLoop(stream)
	}()
	defer func() {
		c.mu.Lock()
		if c.link == l {
			c.link = nil
		}
		c.mu.Unlock()
		close(l.done)
		cancel()
		<-writerDone
		l.failPending()
	}()

	for {
		f, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil // the host ended the stream: not the plugin's error
			}
			return err
		}
		var ev Event
		switch k := f.GetKind().(type) {
		case *pb.PluginFrame_Result:
			l.complete(k.Result)
			continue
		case *pb.PluginFrame_Delivery:
			ev.Message = messageFromProto(k.Delivery.GetMessage())
			if k.Delivery.GetAck() {
				ev.ack = l.acker(k.Delivery.GetSeq())
			}
		case *pb.PluginFrame_Health:
			ev.Health = healthFromProto(k.Health)
		case *pb.PluginFrame_TranscriptRequest:
			ev.Transcript = l.transcriptRequest(k.TranscriptRequest)
		default:
			continue
		}
		select {
		case events <- ev:
		case <-ctx.Done():
			return nil
		}
		if ev.Health != nil && ev.Health.State == Fatal {
			if ev.Health.Fatal != nil {
				return ev.Health.Fatal
			}
			return &FatalError{Code: "fatal", Message: ev.Health.Message}
		}
	}
}

// writeLoop is the stream's only writer.
func (l *link) writeLoop(stream grpc.BidiStreamingClient[pb.HostFrame, pb.PluginFrame]) {
	for {
		select {
		case f := <-l.out:
			if err := stream.Send(f); err != nil {
				return // Recv sees the same error and ends Run
			}
		case <-l.done:
			_ = stream.CloseSend()
			return
		}
	}
}

// acker returns the Ack of message seq: the first call sends it.
func (l *link) acker(seq uint64) func(error) {
	var once atomic.Bool
	return func(err error) {
		if !once.CompareAndSwap(false, true) {
			return
		}
		a := &pb.Ack{Seq: seq}
		if err != nil {
			a.Error = err.Error()
		}
		// A closed stream drops the ack: the plugin's Deliver fails
		// and the platform delivers the message again. The caller (the
		// store's committer) must not wait for a writer held up by a
		// slow plugin: when the queue is full the ack waits on its own.
		f := &pb.HostFrame{Kind: &pb.HostFrame_Ack{Ack: a}}
		select {
		case l.out <- f:
		default:
			go func() { _ = l.enqueue(context.Background(), f) }()
		}
	}
}

func (l *link) enqueue(ctx context.Context, f *pb.HostFrame) error {
	select {
	case l.out <- f:
		return nil
	case <-l.done:
		return ErrStreamClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *link) complete(r *pb.SendResult) {
	l.mu.Lock()
	ch := l.pending[r.GetId()]
	delete(l.pending, r.GetId())
	l.mu.Unlock()
	if ch != nil {
		ch <- r // buffered
	}
}

// failPending ends every reply still waiting for its result.
func (l *link) failPending() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, ch := range l.pending {
		close(ch)
		delete(l.pending, id)
	}
}

// call sends a reply frame that wants a result and waits for it.
func (l *link) call(ctx context.Context, rf *pb.ReplyFrame) ([]string, error) {
	rf.Id = l.nextID.Add(1)
	ch := make(chan *pb.SendResult, 1)
	l.mu.Lock()
	l.pending[rf.Id] = ch
	l.mu.Unlock()
	forget := func() {
		l.mu.Lock()
		delete(l.pending, rf.Id)
		l.mu.Unlock()
	}
	if err := l.enqueue(ctx, &pb.HostFrame{Kind: &pb.HostFrame_Reply{Reply: rf}}); err != nil {
		forget()
		return nil, err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, ErrStreamClosed
		}
		if f := fatalFromProto(r.GetFatal()); f != nil {
			return r.GetMessageIds(), f
		}
		if b := r.GetDeliveryStatus(); len(b) > 0 {
			var st spb.Status
			if err := proto.Unmarshal(b, &st); err == nil {
				return r.GetMessageIds(), deliveryFromStatus(status.FromProto(&st).Err())
			}
		}
		if msg := r.GetError(); msg != "" {
			return r.GetMessageIds(), &SendError{Message: msg}
		}
		return r.GetMessageIds(), nil
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	}
}

// SendError is a reply the plugin could not deliver (a transient error; a
// fatal one is a *FatalError), as the plugin worded it.
type SendError struct {
	Message string
}

// Error returns the plugin's message.
func (e *SendError) Error() string { return "the plugin could not deliver the reply: " + e.Message }

func (c *GRPCClientV2) current() *link {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.link
}

// Send implements Platform: the reply goes over the stream as one frame.
func (c *GRPCClientV2) Send(ctx context.Context, r Reply) ([]string, error) {
	l := c.current()
	if l == nil {
		return nil, ErrStreamClosed
	}
	return l.call(ctx, &pb.ReplyFrame{Phase: pb.ReplyPhase_REPLY_PHASE_WHOLE, Reply: replyToProto(r)})
}

// SendPart implements PluginConn. Start and Delta are queued and not
// answered; End and Fail wait for the plugin's result. To a plugin that does
// not stream only the last part goes, as a whole reply.
func (c *GRPCClientV2) SendPart(ctx context.Context, part ReplyPart) ([]string, error) {
	if !c.Streams() {
		return sendWhole(ctx, c.Send, part)
	}
	l := c.current()
	if l == nil {
		return nil, ErrStreamClosed
	}
	rf := &pb.ReplyFrame{ReplyId: part.ReplyID, Phase: phaseToProto(part.Phase), Reply: replyToProto(part.Reply)}
	switch part.Phase {
	case PhaseEnd, PhaseFail:
		return l.call(ctx, rf)
	default:
		return nil, l.enqueue(ctx, &pb.HostFrame{Kind: &pb.HostFrame_Reply{Reply: rf}})
	}
}

// Typing implements Platform: a frame on the stream, not answered.
func (c *GRPCClientV2) Typing(ctx context.Context, conv Conversation) error {
	l := c.current()
	if l == nil {
		return ErrStreamClosed
	}
	return l.enqueue(ctx, &pb.HostFrame{Kind: &pb.HostFrame_Typing{Typing: &pb.TypingRequest{
		ConversationId: conv.ConversationID, ThreadId: conv.ThreadID}}})
}

// descriptionFromProto decodes a Describe answer.
func descriptionFromProto(resp *pb.DescribeResponse) (Description, error) {
	d := Description{Name: resp.GetName(), Version: resp.GetVersion(), Description: resp.GetDescription()}
	for _, pa := range resp.GetSchema() {
		a, err := attributeFromProto(pa)
		if err != nil {
			return Description{}, fmt.Errorf("plugin schema: %w", err)
		}
		d.Schema = append(d.Schema, a)
	}
	return d, nil
}

// transcriptRequest is a plugin's transcript request as the host sees it:
// its answer goes back over the stream. Like an ack, it never makes the
// one who answers wait for a writer held up by a slow plugin.
func (l *link) transcriptRequest(r *pb.TranscriptRequest) *TranscriptRequest {
	id := r.GetId()
	conv := Conversation{ConversationID: r.GetConversationId(), ThreadID: r.GetThreadId()}
	return NewTranscriptRequest(conv, func(t Transcript, err error) {
		f := transcriptAnswerToProto(id, t, err)
		select {
		case l.out <- f:
		default:
			go func() { _ = l.enqueue(context.Background(), f) }()
		}
	})
}
