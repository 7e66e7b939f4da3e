package shared

import (
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// MaxMessageBytes caps one gRPC message between host and plugin, each way:
// the host's client (calls it makes, answers and stream events it receives)
// and the plugin's server use the same limit, so a message one side may send
// the other may receive. The host keeps every reply under it: the agent's
// max_reply_bytes may be at most half of it (config.MaxReplyBytesLimit),
// which leaves room for the rest of a Reply.
const MaxMessageBytes = 8 << 20

// MaxReplyBytesLimit is the largest text one message carries either way:
// the host's replies (the agent's max_reply_bytes at most) and a plugin's
// inbound messages (the HTTP plugin's max_body at most). Half of
// MaxMessageBytes leaves room for the rest of the message.
const MaxReplyBytesLimit = MaxMessageBytes / 2

// GRPCDialOptions are the host's dial options for a plugin connection
// (plugin.ClientConfig.GRPCDialOptions): MaxMessageBytes both ways.
func GRPCDialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultCallOptions(
		grpc.MaxCallRecvMsgSize(MaxMessageBytes),
		grpc.MaxCallSendMsgSize(MaxMessageBytes),
	)}
}

// newGRPCServer is go-plugin's default gRPC server with MaxMessageBytes both
// ways (the gRPC default receive limit is 4 MiB).
func newGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	return plugin.DefaultGRPCServer(append(opts,
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
	))
}
