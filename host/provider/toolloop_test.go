package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plughost/gateway/host/provider/providertest"
)

// fakeToolbox offers "echo" and "block" (which waits for its ctx); any
// other name is refused, and counted as refused, never run.
type fakeToolbox struct {
	ran, refused atomic.Int64
	running      sync.WaitGroup
	started      chan string
}

func (b *fakeToolbox) Functions() []Function {
	return []Function{{Name: "echo", Parameters: json.RawMessage(`{"type":"object"}`)}, {Name: "block", Parameters: json.RawMessage(`{"type":"object"}`)}}
}

func (b *fakeToolbox) Call(ctx context.Context, fn string, args json.RawMessage) (string, bool, error) {
	switch fn {
	case "echo":
		b.ran.Add(1)
		return "echo " + string(args), false, nil
	case "block":
		b.ran.Add(1)
		if b.started != nil {
			b.started <- fn
		}
		<-ctx.Done()
		return "cancelled", true, nil
	}
	b.refused.Add(1)
	return fmt.Sprintf("error: %q is not a tool you may use", fn), true, errors.New("not allowed")
}

func TestToolLoop(t *testing.T) {
	srv := providertest.New(t)
	srv.Calls = func(r *providertest.Request) []providertest.ToolCall {
		if r.Messages[len(r.Messages)-1].Role != "user" {
			return nil
		}
		return []providertest.ToolCall{
			providertest.Call("a", "echo", `{"x":1}`), providertest.Call("b", "secret", `{}`), providertest.Call("c", "echo", `not json`),
		}
	}
	srv.Reply = func(r *providertest.Request) string {
		var got []string
		for _, m := range r.Messages {
			if m.Role == "tool" {
				got = append(got, m.ToolCallID+"="+m.Content)
			}
		}
		return strings.Join(got, "; ")
	}
	p := newTestProvider(t, srv, nil, RetryPolicy{MaxAttempts: 1})
	box := &fakeToolbox{}
	var seen []string
	var mu sync.Mutex
	req := userReq("go")
	req.Tools = box
	req.OnToolCall = func(fn string) { mu.Lock(); seen = append(seen, fn); mu.Unlock() }
	resp, err := p.Complete(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.Content, `a=echo {"x":1}`) || !strings.Contains(resp.Content, `b=error: "secret" is not a tool`) ||
		!strings.Contains(resp.Content, "c=error: the arguments are not a JSON object") {
		t.Fatalf("reply = %q", resp.Content)
	}
	if box.ran.Load() != 1 || box.refused.Load() != 1 {
		t.Fatalf("ran %d, refused %d; want 1 and 1", box.ran.Load(), box.refused.Load())
	}
	if len(resp.Turns) != 4 || resp.Turns[0].Role != RoleAssistant || len(resp.Turns[0].ToolCalls) != 3 || resp.Turns[1].Role != RoleTool {
		t.Fatalf("turns = %+v", resp.Turns)
	}
	first := srv.Requests()[0]
	if names := first.ToolNames(); len(names) != 2 || names[0] != "echo" || first.Tools[0].Type != "function" {
		t.Fatalf("tools offered = %+v", first.Tools)
	}
}

func TestToolLoopStopsAtMaxRounds(t *testing.T) {
	srv := providertest.New(t)
	srv.Calls = func(r *providertest.Request) []providertest.ToolCall {
		if r.ToolChoice == "none" {
			return nil
		}
		return []providertest.ToolCall{providertest.Call(fmt.Sprint(len(r.Messages)), "echo", `{}`)}
	}
	srv.Reply = func(*providertest.Request) string { return "gave up on tools" }
	p := newTestProvider(t, srv, nil, RetryPolicy{MaxAttempts: 1})
	box := &fakeToolbox{}
	req := userReq("loop")
	req.Tools, req.MaxToolRounds = box, 3
	resp, err := p.Complete(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "gave up on tools" || box.ran.Load() != 3 || srv.Served() != 4 {
		t.Fatalf("reply %q after %d tool calls and %d requests; want the answer after 3 rounds and 4 requests", resp.Content, box.ran.Load(), srv.Served())
	}
}

func TestToolCallCancelled(t *testing.T) {
	srv := providertest.New(t)
	srv.Calls = func(r *providertest.Request) []providertest.ToolCall {
		return []providertest.ToolCall{providertest.Call("a", "block", `{}`)}
	}
	p := newTestProvider(t, srv, nil, RetryPolicy{MaxAttempts: 1})
	box := &fakeToolbox{started: make(chan string, 1)}
	req := userReq("block")
	req.Tools = box
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := p.Complete(ctx, req); done <- err }()
	select {
	case <-box.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the tool did not start")
	}
	cancel() // /stop
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling did not stop the running tool call")
	}
	if srv.Served() != 1 {
		t.Fatalf("%d requests; a cancelled tool round must not ask the model again", srv.Served())
	}
}
