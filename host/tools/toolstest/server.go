// Package toolstest is a small MCP server built with the official Go SDK,
// for tests: served over stdio by testdata/mcpserver, or over streamable
// HTTP in-process. Its tools: echo, add, slow, env, pid, fail, calls.
package toolstest

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// NewServer returns the test server. calls counts tool calls.
func NewServer(calls *atomic.Int64) *mcp.Server {
	if calls == nil {
		calls = new(atomic.Int64)
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "toolstest", Version: "1"}, nil)
	text := func(format string, a ...any) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf(format, a...)}}}
	}
	type echoArgs struct {
		Text string `json:"text" jsonschema:"what to echo"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Echo the text back."},
		func(_ context.Context, _ *mcp.CallToolRequest, a echoArgs) (*mcp.CallToolResult, any, error) {
			calls.Add(1)
			return text("echoed: %s", a.Text), nil, nil
		})
	type addArgs struct {
		A float64 `json:"a"`
		B float64 `json:"b"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "add", Description: "Add two numbers."},
		func(_ context.Context, _ *mcp.CallToolRequest, a addArgs) (*mcp.CallToolResult, any, error) {
			calls.Add(1)
			return text("%g", a.A+a.B), nil, nil
		})
	type slowArgs struct {
		Millis int `json:"millis"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "slow", Description: "Sleep, then answer."},
		func(ctx context.Context, _ *mcp.CallToolRequest, a slowArgs) (*mcp.CallToolResult, any, error) {
			calls.Add(1)
			select {
			case <-time.After(time.Duration(a.Millis) * time.Millisecond):
				return text("slept %d ms", a.Millis), nil, nil
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		})
	type none struct{}
	mcp.AddTool(s, &mcp.Tool{Name: "env", Description: "List the environment variable names."},
		func(_ context.Context, _ *mcp.CallToolRequest, _ none) (*mcp.CallToolResult, any, error) {
			calls.Add(1)
			var names []string
			for _, kv := range os.Environ() {
				k, _, _ := strings.Cut(kv, "=")
				names = append(names, k)
			}
			sort.Strings(names)
			return text("%s", strings.Join(names, ",")), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "pid", Description: "The server's process id."},
		func(_ context.Context, _ *mcp.CallToolRequest, _ none) (*mcp.CallToolResult, any, error) {
			calls.Add(1)
			return text("%d", os.Getpid()), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "fail", Description: "Always fails."},
		func(_ context.Context, _ *mcp.CallToolRequest, _ none) (*mcp.CallToolResult, any, error) {
			calls.Add(1)
			r := text("the tool failed on purpose")
			r.IsError = true
			return r, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "calls", Description: "How many tool calls this server has run."},
		func(_ context.Context, _ *mcp.CallToolRequest, _ none) (*mcp.CallToolResult, any, error) {
			return text("%d", calls.Load()), nil, nil
		})
	return s
}
