package shared

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
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
// typing frame goes to one of a fixed set of send workers, chosen by
// conversation, so the parts of one reply keep their order, replies to
// different conversations do not wait for each other, and no goroutine is
// started per message.

// sendWorkers is how many replies a plugin sends to its platform at once.
const sendWorkers = 8

// sendQueue is how many frames may wait for each send worker.
const sendQueue = 64

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
	results := make(chan *pb.PluginFrame, sendWorkers*sendQueue)
	readDone := make(chan error, 1)
	var workers sync.WaitGroup
	// Cancel before waiting: a worker may be in a Send, and the reader
	// ends only once this handler has returned.
	defer func() { cancel(); workers.Wait() }()
	queues := make([]chan *pb.HostFrame, sendWorkers)
	for i := range queues {
		queues[i] = make(chan *pb.HostFrame, sendQueue)
		workers.Add(1)
		go func() {
			defer workers.Done()
			s.sendLoop(ctx, queues[i], results)
		}()
	}
	go func() { readDone <- s.readLoop(ctx, stream, pending, queues) }()

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
// side or the stream breaks, closing the send workers' queues.
func (s *grpcServerV2) readLoop(ctx context.Context, stream grpc.BidiStreamingServer[pb.HostFrame, pb.PluginFrame], pending *pendingTaken, queues []chan *pb.HostFrame) error {
	defer func() {
		for _, q := range queues {
			close(q)
		}
	}()
	seed := maphash.MakeSeed()
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
		q := queues[maphash.String(seed, conv)%uint64(len(queues))]
		select {
		case q <- f:
		case <-ctx.Done():
			return nil
		}
	}
}

// sendLoop is one send worker: it hands replies and typing to the plugin, in
// the order they came, and queues the results for the writer.
func (s *grpcServerV2) sendLoop(ctx context.Context, queue <-chan *pb.HostFrame, results chan<- *pb.PluginFrame) {
	impl := s.v1.impl
	streamer, _ := impl.(Streamer)
	for {
		var f *pb.HostFrame
		select {
		case f = <-queue:
		case <-ctx.Done():
			return
		}
		if f == nil {
			return // closed: the host ended the stream
		}
		if t := f.GetTyping(); t != nil {
			if err := impl.Typing(ctx, Conversation{ConversationID: t.GetConversationId(), ThreadID: t.GetThreadId()}); err != nil && ctx.Err() == nil {
				s.v1.logger.Debug("typing indicator failed", "error", err)
			}
			continue
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
			continue
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
			return
		}
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
