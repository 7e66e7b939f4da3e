package shared

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/plughost/gateway/shared/proto"
)

// GRPCPlugin is the go-plugin glue for protocol 1: on the plugin side it serves
// Impl over gRPC; on the host side it dispenses a Platform that calls it.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the plugin's implementation; nil on the host side.
	Impl Platform
	// Logger is handed to Impl in Configure, and re-levelled by SetLogLevel.
	Logger hclog.Logger
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the platform service.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	logger := p.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	pb.RegisterPlatformServer(s, &grpcServer{impl: p.Impl, logger: logger})
	return nil
}

// GRPCClient returns a Platform backed by the connection.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &GRPCClient{client: pb.NewPlatformClient(c)}, nil
}

// grpcServer adapts a Platform to the generated gRPC server interface.
type grpcServer struct {
	pb.UnimplementedPlatformServer
	impl   Platform
	logger hclog.Logger
}

func (s *grpcServer) Describe(ctx context.Context, _ *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	d, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, err
	}
	resp := &pb.DescribeResponse{Name: d.Name, Version: d.Version, Description: d.Description}
	for _, a := range d.Schema {
		pa, err := attributeToProto(a)
		if err != nil {
			return nil, err
		}
		resp.Schema = append(resp.Schema, pa)
	}
	return resp, nil
}

func (s *grpcServer) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	// An unknown level is ignored: hclog's NoLevel would log everything.
	if lvl := hclog.LevelFromString(req.GetLogLevel()); lvl != hclog.NoLevel {
		s.logger.SetLevel(lvl)
	}
	err := s.impl.Configure(ctx, Config{Raw: req.GetConfigJson(), Logger: s.logger, Cursor: req.GetCursor(),
		Shard: int(req.GetShard()), ShardCount: int(req.GetShardCount())})
	var fatal *FatalError
	if errors.As(err, &fatal) {
		return &pb.ConfigureResponse{Fatal: fatalToProto(fatal)}, nil
	}
	if err != nil {
		return nil, err
	}
	return &pb.ConfigureResponse{}, nil
}

func (s *grpcServer) Run(_ *pb.RunRequest, stream grpc.ServerStreamingServer[pb.Event]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	events := make(chan Event, 64)
	done := make(chan error, 1)
	go func() { done <- s.impl.Run(ctx, events) }()

	// Protocol v1 has no acknowledgements: a message counts as taken once
	// it is written to the stream. Its hosts keep no cursors, so a
	// checkpoint goes nowhere.
	send := func(ev Event) error {
		if ev.Message != nil && ev.Message.IsCheckpoint() {
			ev.Ack(nil)
			return nil
		}
		if ev.Transcript != nil {
			ev.Transcript.Answer(Transcript{}, ErrTranscriptUnsupported)
			return nil
		}
		if pe := eventToProto(ev); pe != nil {
			err := stream.Send(pe)
			ev.Ack(err)
			return err
		}
		return nil
	}
	for {
		select {
		case ev := <-events:
			if err := send(ev); err != nil {
				cancel()
				<-done
				return err
			}
		case err := <-done:
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

func (s *grpcServer) Send(ctx context.Context, req *pb.SendRequest) (*pb.SendResponse, error) {
	ids, err := s.impl.Send(ctx, replyFromProto(req))
	var fatal *FatalError
	if errors.As(err, &fatal) {
		return &pb.SendResponse{MessageIds: ids, Fatal: fatalToProto(fatal)}, nil
	}
	var undelivered *DeliveryError
	if errors.As(err, &undelivered) {
		return nil, undelivered // its own status, its own words
	}
	if err != nil {
		return nil, err
	}
	return &pb.SendResponse{MessageIds: ids}, nil
}

func (s *grpcServer) Typing(ctx context.Context, req *pb.TypingRequest) (*pb.TypingResponse, error) {
	err := s.impl.Typing(ctx, Conversation{ConversationID: req.GetConversationId(), ThreadID: req.GetThreadId()})
	if err != nil {
		return nil, err
	}
	return &pb.TypingResponse{}, nil
}

func (s *grpcServer) SetLogLevel(_ context.Context, req *pb.SetLogLevelRequest) (*pb.SetLogLevelResponse, error) {
	lvl := hclog.LevelFromString(req.GetLevel())
	if lvl == hclog.NoLevel {
		return nil, fmt.Errorf("unknown log level %q", req.GetLevel())
	}
	s.logger.SetLevel(lvl)
	return &pb.SetLogLevelResponse{}, nil
}

func (s *grpcServer) Stop(ctx context.Context, _ *pb.StopRequest) (*pb.StopResponse, error) {
	if err := s.impl.Stop(ctx); err != nil {
		return nil, err
	}
	return &pb.StopResponse{}, nil
}

// GRPCClient is the host's view of a protocol 1 plugin: a Platform whose
// methods are gRPC calls, one unary call per reply.
type GRPCClient struct {
	client pb.PlatformClient
}

var _ PluginConn = (*GRPCClient)(nil)

// Protocol implements PluginConn.
func (c *GRPCClient) Protocol() int { return 1 }

// Streams implements PluginConn: protocol 1 has no streamed replies.
func (c *GRPCClient) Streams() bool { return false }

// SendPart implements PluginConn: the final part is sent whole.
func (c *GRPCClient) SendPart(ctx context.Context, part ReplyPart) ([]string, error) {
	return sendWhole(ctx, c.Send, part)
}

// Describe implements Platform.
func (c *GRPCClient) Describe(ctx context.Context) (Description, error) {
	resp, err := c.client.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return Description{}, err
	}
	d := Description{Name: resp.GetName(), Version: resp.GetVersion(), Description: resp.GetDescription()}
	for _, pa := range resp.GetSchema() {
		a, err := attributeFromProto(pa)
		if err != nil {
			return Description{}, err
		}
		d.Schema = append(d.Schema, a)
	}
	return d, nil
}

// Configure implements Platform. Config.Logger is not sent; pass the log
// level with ConfigureWithLevel.
func (c *GRPCClient) Configure(ctx context.Context, cfg Config) error {
	return c.ConfigureWithLevel(ctx, cfg, "")
}

// ConfigureWithLevel configures the plugin and sets its log level.
func (c *GRPCClient) ConfigureWithLevel(ctx context.Context, cfg Config, level string) error {
	resp, err := c.client.Configure(ctx, &pb.ConfigureRequest{ConfigJson: cfg.Raw, LogLevel: level, Cursor: cfg.Cursor,
		Shard: int32(cfg.Shard), ShardCount: int32(cfg.ShardCount)}) //nolint:gosec // bounded by config.MaxShards
	if err != nil {
		return err
	}
	if f := fatalFromProto(resp.GetFatal()); f != nil {
		return f
	}
	return nil
}

// Run implements Platform: it forwards the plugin's event stream to events
// until the stream ends. A FATAL health event is forwarded and also returned
// as a *FatalError. A stream that ends cleanly, or ends because ctx was
// cancelled, returns nil, as the Platform contract says.
func (c *GRPCClient) Run(ctx context.Context, events chan<- Event) error {
	stream, err := c.client.Run(ctx, &pb.RunRequest{})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	for {
		pe, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil // the host ended the stream: not the plugin's error
			}
			return err
		}
		ev := eventFromProto(pe)
		if ev.Message == nil && ev.Health == nil {
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

// Send implements Platform.
func (c *GRPCClient) Send(ctx context.Context, r Reply) ([]string, error) {
	resp, err := c.client.Send(ctx, replyToProto(r))
	if err != nil {
		return nil, deliveryFromStatus(err)
	}
	if f := fatalFromProto(resp.GetFatal()); f != nil {
		return resp.GetMessageIds(), f
	}
	return resp.GetMessageIds(), nil
}

// Typing implements Platform.
func (c *GRPCClient) Typing(ctx context.Context, conv Conversation) error {
	_, err := c.client.Typing(ctx, &pb.TypingRequest{ConversationId: conv.ConversationID, ThreadId: conv.ThreadID})
	return err
}

// SetLogLevel changes the plugin's log level.
func (c *GRPCClient) SetLogLevel(ctx context.Context, level string) error {
	_, err := c.client.SetLogLevel(ctx, &pb.SetLogLevelRequest{Level: level})
	return err
}

// Stop implements Platform.
func (c *GRPCClient) Stop(ctx context.Context) error {
	_, err := c.client.Stop(ctx, &pb.StopRequest{})
	return err
}
