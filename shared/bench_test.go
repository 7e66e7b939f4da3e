package shared_test

import (
	"context"
	"testing"

	"github.com/plughost/gateway/shared"
)

// benchSend measures one reply from host to plugin and back over c.
func benchSend(b *testing.B, c shared.Platform) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan shared.Event, 8)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, events) }()
	<-events // connected
	r := shared.Reply{ConversationID: "c", ReplyToID: "m", Text: "echo: hello", Kind: shared.KindReply}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Send(context.Background(), r); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	cancel()
	<-done
}

// BenchmarkSendV1 is a reply as protocol 1 sends it: one unary call.
func BenchmarkSendV1(b *testing.B) {
	benchSend(b, shared.TestPlatform(b, &shared.FakePlatform{}))
}

// BenchmarkSendV2 is a reply as protocol 2 sends it: a frame each way on
// the plugin's stream.
func BenchmarkSendV2(b *testing.B) {
	benchSend(b, shared.TestPlatformV2(b, &shared.FakePlatform{}))
}
