package shared

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	pb "github.com/plughost/gateway/shared/proto"
)

// The plugin side of protocol 2.
//
// Connect runs the plugin's Run and carries its events to the host over one
// bidirectional stream. The handler goroutine is the stream's only writer:
// it sends the events Run produces (each message with a sequence number;
// the Taken channel of a message given with Deliver waits in the pending
// map under that number) and the results of replies. One reader goroutine
// takes the host's frames: an Ack completes the pending Deliver; a reply or
// typing frame goes to its conversation's lane, a queue drained by one
// goroutine that lives while the lane has frames: the parts of one reply
// keep their order, a conversation held up by its platform (a 60 s rate
// limit on one channel) holds up no other, and no goroutine is started per
// message. The host bounds what is in flight (its delivery queues wait for
// each reply's result), so lanes need no bound of their own.

// resultQueue is how many reply results may wait for the writer.
const resultQueue = 256

// errHostGone is what Deliver returns when the stream to the host ended
// before the host acknowledged the message.
var errHostGone = errors.New("the gateway host disconnected before it took the message")

type grpcServerV2 struct {
	pb.UnimplementedPlatformV2Server
	v1 *grpcServer // Describe, Configure, SetLogLevel and Stop are the same
}

func (s *grpcServerV2) Describe(ctx context.Context, req *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	return s.v1.Describe(ctx, req)
}

func (s *grpcServerV2) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	resp, err := s.v1.Configure(ctx, req)
	if err != nil || resp.GetFatal() != nil {
		return resp, err
	}
	if st, ok := s.v1.impl.(Streamer); ok {
		resp.Streams = st.Streams()
	}
	return resp, nil
}

func (s *grpcServerV2) SetLogLevel(ctx context.Context, req *pb.SetLogLevelRequest) (*pb.SetLogLevelResponse, error) {
	return s.v1.SetLogLevel(ctx, req)
}

func (s *grpcServerV2) Stop(ctx context.Context, req *pb.StopRequest) (*pb.StopResponse, error) {
	return s.v1.Stop(ctx, req)
}

// pendingTaken maps the sequence number of a message sent with Deliver to
// its Taken channel, until the host's Ack arrives.
type pendingTaken struct {
	mu     sync.Mutex
	m      map[uint64]chan<- error
	closed bool
	// asks are the plugin's transcript requests waiting for their answer.
	asks map[uint64]*TranscriptRequest
}

// put registers ch under seq; once the host is gone it fails ch at once.
func (p *pendingTaken) put(seq uint64, ch chan<- error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		Event{Taken: ch}.Ack(errHostGone)
		return
	}
	p.m[seq] = ch
}

func (p *pendingTaken) take(seq uint64) chan<- error {
	p.mu.Lock()
	ch := p.m[seq]
	delete(p.m, seq)
	p.mu.Unlock()
	return ch
}

// failAll tells every Deliver (and transcript request) still waiting that
// the host is gone.
func (p *pendingTaken) failAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for seq, ch := range p.m {
		Event{Taken: ch}.Ack(errHostGone)
		delete(p.m, seq)
	}
	for id, req := range p.asks {
		req.Answer(Transcript{}, errTranscriptHostGone)
		delete(p.asks, id)
	}
}

func (s *grpcServerV2) Connect(stream grpc.BidiStreamingServer[pb.HostFrame, pb.PluginFrame]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	impl := s.v1.impl
	events := make(chan Event, 64)
	runDone := make(chan error, 1)
	go func() { runDone <- impl.Run(ctx, events) }()

	pending := &pendingTaken{m: map[uint64]chan<- error{}}
	defer pending.failAll()
	results := make(chan *pb.PluginFrame, resultQueue)
	readDone := make(chan error, 1)
	ln := &lanes{s: s, ctx: ctx, results: results, m: map[string]*lane{}}
	// Cancel before waiting: a lane may be in a Send, and the reader
	// ends only once this handler has returned.
	defer func() { cancel(); ln.wg.Wait() }()
	go func() { readDone <- s.readLoop(stream, pending, ln) }()

	var seq, askID uint64
	send := func(ev Event) error {
		f := &pb.PluginFrame{}
		switch {
		case ev.Transcript != nil:
			askID++
			pending.ask(askID, ev.Transcript)
			if err := stream.Send(transcriptRequestToProto(askID, ev.Transcript)); err != nil {
				if req := pending.answered(askID); req != nil {
					req.Answer(Transcript{}, err)
				}
				return err
			}
			return nil
		case ev.Message != nil:
			seq++
			if ev.Taken != nil {
				pending.put(seq, ev.Taken)
			}
			f.Kind = &pb.PluginFrame_Delivery{Delivery: &pb.Delivery{
				Seq: seq, Ack: ev.Taken != nil, Message: messageToProto(ev.Message)}}
		case ev.Health != nil:
			f.Kind = &pb.PluginFrame_Health{Health: healthToProto(ev.Health)}
		default:
			return nil
		}
		if err := stream.Send(f); err != nil {
			if ev.Taken != nil {
				pending.take(seq)
				ev.Ack(err)
			}
			return err
		}
		return nil
	}
	for {
		select {
		case ev := <-events:
			if err := send(ev); err != nil {
				cancel()
				<-runDone
				return err
			}
		case r := <-results:
			if err := stream.Send(r); err != nil {
				cancel()
				<-runDone
				return err
			}
		case err := <-readDone:
			// The host ended the stream (or it broke): stop Run. Its
			// remaining events have nowhere to go, and a Deliver still
			// waiting learns the message was not taken.
			pending.failAll()
			cancel()
			<-runDone
			if err != nil && ctx.Err() == nil {
				return err
			}
			return nil
		case err := <-runDone:
			// Run has returned and sends no more: flush what it queued.
			for len(events) > 0 {
				if serr := send(<-events); serr != nil {
					return serr
				}
			}
			var fatal *FatalError
			if errors.As(err, &fatal) {
				return send(Event{Health: &Health{State: Fatal, Message: fatal.Message, Fatal: fatal}})
			}
			return err
		}
	}
}

// readLoop is the stream's only reader. It returns when the host closes its
// side or the stream breaks; lanes still holding frames finish them.
func (s *grpcServerV2) readLoop(stream grpc.BidiStreamingServer[pb.HostFrame, pb.PluginFrame], pending *pendingTaken, ln *lanes) error {
	for {
		f, err := stream.Recv()
		if err != nil {
			return err
		}
		var conv string
		switch k := f.GetKind().(type) {
		case *pb.HostFrame_Ack:
			if ch := pending.take(k.Ack.GetSeq()); ch != nil {
				var err error
				if msg := k.Ack.GetError(); msg != "" {
					err = fmt.Errorf("the gateway host could not take the message: %s", msg)
				}
				Event{Taken: ch}.Ack(err)
			}
			continue
		case *pb.HostFrame_Transcript:
			if req := pending.answered(k.Transcript.GetId()); req != nil {
				req.Answer(transcriptAnswerFromProto(k.Transcript))
			}
			continue
		case *pb.HostFrame_Reply:
			conv = k.Reply.GetReply().GetConversationId()
		case *pb.HostFrame_Typing:
			conv = k.Typing.GetConversationId()
		default:
			continue
		}
		ln.push(conv, f)
	}
}

// lanes are the per-conversation queues of reply and typing frames.
type lanes struct {
	s       *grpcServerV2
	ctx     context.Context
	results chan<- *pb.PluginFrame
	wg      sync.WaitGroup

	mu sync.Mutex
	m  map[string]*lane
}

type lane struct{ frames []*pb.HostFrame }

// push queues f on conv's lane, starting the lane's goroutine if it has
// none. It never blocks.
func (l *lanes) push(conv string, f *pb.HostFrame) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if q := l.m[conv]; q != nil {
		q.frames = append(q.frames, f)
		return
	}
	l.m[conv] = &lane{frames: []*pb.HostFrame{f}}
	l.wg.Add(1)
	go l.drain(conv)
}

// next pops conv's next frame; nil (and the lane removed) when it has none.
func (l *lanes) next(conv string) *pb.HostFrame {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.m[conv]
	if len(q.frames) == 0 {
		delete(l.m, conv)
		return nil
	}
	f := q.frames[0]
	q.frames[0] = nil
	q.frames = q.frames[1:]
	return f
}

// drain hands conv's frames to the plugin in order until none is left.
func (l *lanes) drain(conv string) {
	defer l.wg.Done()
	for f := l.next(conv); f != nil; f = l.next(conv) {
		if l.ctx.Err() != nil {
			continue // the stream is gone: drop what is left
		}
		l.s.handle(l.ctx, f, l.results)
	}
}

// handle hands one reply or typing frame to the plugin and queues the
// reply's result for the writer.
func (s *grpcServerV2) handle(ctx context.Context, f *pb.HostFrame, results chan<- *pb.PluginFrame) {
	impl := s.v1.impl
	streamer, _ := impl.(Streamer)
	if t := f.GetTyping(); t != nil {
		if err := impl.Typing(ctx, Conversation{ConversationID: t.GetConversationId(), ThreadID: t.GetThreadId()}); err != nil && ctx.Err() == nil {
			s.v1.logger.Debug("typing indicator failed", "error", err)
		}
		return
	}
	rf := f.GetReply()
	reply := replyFromProto(rf.GetReply())
	var ids []string
	var err error
	phase := phaseFromProto(rf.GetPhase())
	switch {
	case phase == 0:
		ids, err = impl.Send(ctx, reply)
	case streamer != nil:
		ids, err = streamer.SendPart(ctx, ReplyPart{ReplyID: rf.GetReplyId(), Phase: phase, Reply: reply})
	default:
		ids, err = sendWhole(ctx, impl.Send, ReplyPart{Phase: phase, Reply: reply})
	}
	if rf.GetId() == 0 {
		if err != nil && ctx.Err() == nil {
			s.v1.logger.Debug("reply part failed", "reply", rf.GetReplyId(), "phase", phase.String(), "error", err)
		}
		return
	}
	res := &pb.SendResult{Id: rf.GetId(), MessageIds: ids}
	var fatal *FatalError
	var undelivered *DeliveryError
	switch {
	case errors.As(err, &fatal):
		res.Fatal = fatalToProto(fatal)
	case errors.As(err, &undelivered):
		res.Error = undelivered.Error()
		res.DeliveryStatus, _ = proto.Marshal(undelivered.GRPCStatus().Proto())
	case err != nil:
		res.Error = err.Error()
	}
	select {
	case results <- &pb.PluginFrame{Kind: &pb.PluginFrame_Result{Result: res}}:
	case <-ctx.Done():
	}
}

// GRPCPluginV2 is the go-plugin glue for protocol 2: on the plugin side it
// serves Impl over gRPC; on the host side it dispenses a PluginConn.
type GRPCPluginV2 struct {
	GRPCPlugin
}

// GRPCServer registers the protocol 2 platform service.
func (p *GRPCPluginV2) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	logger := p.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	pb.RegisterPlatformV2Server(s, &grpcServerV2{v1: &grpcServer{impl: p.Impl, logger: logger}})
	return nil
}
