package shared

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// TestPlatform serves impl in-process over a real gRPC connection with
// protocol 1 and returns the host's client for it, so plugin authors test
// their plugin through the wire contract without starting a process.
// Everything is closed at the end of the test. With protocol 1 a message
// counts as taken once it is on the wire: Deliver returns without the test
// acknowledging anything. TestPlatformV2 tests the protocol 2 contract.
func TestPlatform(t testing.TB, impl Platform) *GRPCClient {
	t.Helper()
	return testPlatform(t, &GRPCPlugin{Impl: impl, Logger: hclog.NewNullLogger()}).(*GRPCClient)
}

// TestPlatformV2 is TestPlatform with protocol 2: one stream each way,
// streamed replies when impl is a Streamer that Streams, and Deliver
// returns only once the test, playing the host, calls Ack on the event it
// took from Run.
func TestPlatformV2(t testing.TB, impl Platform) *GRPCClientV2 {
	t.Helper()
	return testPlatform(t, &GRPCPluginV2{GRPCPlugin{Impl: impl, Logger: hclog.NewNullLogger()}}).(*GRPCClientV2)
}

func testPlatform(t testing.TB, p plugin.Plugin) any {
	t.Helper()
	client, server := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{PluginName: p})
	t.Cleanup(func() {
		// Stop the server first: client.Close asks the server to stop
		// itself over the controller service, and a second, concurrent
		// server.Stop races with it on the broker.
		server.Stop()
		_ = client.Close()
	})
	raw, err := client.Dispense(PluginName)
	if err != nil {
		t.Fatalf("dispensing platform plugin: %v", err)
	}
	return raw
}

// FakePlatform is a Platform whose methods call its function fields, for
// host tests that need a plugin's behaviour without a process. A nil field
// does nothing and returns zero values.
type FakePlatform struct {
	DescribeFunc  func(ctx context.Context) (Description, error)
	ConfigureFunc func(ctx context.Context, cfg Config) error
	RunFunc       func(ctx context.Context, events chan<- Event) error
	SendFunc      func(ctx context.Context, r Reply) ([]string, error)
	TypingFunc    func(ctx context.Context, conv Conversation) error
	StopFunc      func(ctx context.Context) error
}

var _ Platform = (*FakePlatform)(nil)

// Describe implements Platform.
func (f *FakePlatform) Describe(ctx context.Context) (Description, error) {
	if f.DescribeFunc == nil {
		return Description{Name: "fake"}, nil
	}
	return f.DescribeFunc(ctx)
}

// Configure implements Platform.
func (f *FakePlatform) Configure(ctx context.Context, cfg Config) error {
	if f.ConfigureFunc == nil {
		return nil
	}
	return f.ConfigureFunc(ctx, cfg)
}

// Run implements Platform. With no RunFunc it reports Connected and waits.
func (f *FakePlatform) Run(ctx context.Context, events chan<- Event) error {
	if f.RunFunc == nil {
		select {
		case events <- Event{Health: &Health{State: Connected}}:
		case <-ctx.Done():
		}
		<-ctx.Done()
		return nil
	}
	return f.RunFunc(ctx, events)
}

// Send implements Platform.
func (f *FakePlatform) Send(ctx context.Context, r Reply) ([]string, error) {
	if f.SendFunc == nil {
		return nil, nil
	}
	return f.SendFunc(ctx, r)
}

// Typing implements Platform.
func (f *FakePlatform) Typing(ctx context.Context, conv Conversation) error {
	if f.TypingFunc == nil {
		return nil
	}
	return f.TypingFunc(ctx, conv)
}

// Stop implements Platform.
func (f *FakePlatform) Stop(ctx context.Context) error {
	if f.StopFunc == nil {
		return nil
	}
	return f.StopFunc(ctx)
}
