// Package provider talks to LLM providers: the embedded echo provider and any
// OpenAI-compatible chat completions API.
//
// Connection ownership (so that no client leaks): each configured provider owns exactly one http.Transport, shared
// by every agent that uses it, with MaxConnsPerHost = max_connections
// (default 32). That is the idiomatic Go answer: a Transport is a connection
// pool meant to be shared and reused, and a single pool makes the bound on
// open connections a property of the provider rather than of how many agents
// happen to exist. A pool per agent leaks: every evicted agent's idle
// connections stay open until the peer times them out, so open connections
// grow with churn instead of with load.
//
// Agents therefore do not own connections; they own a Client, a per-agent
// handle that tracks the agent's in-flight requests. Closing a Client cancels
// those requests and waits until they have returned, so no goroutine and no
// request survives the agent. Closing a Provider (when it is removed by a
// reload, or at shutdown) cancels everything still in flight on it and closes
// the Transport's idle connections, leaving zero open connections.
package provider

import (
	"context"
	"fmt"
	"maps"
	"time"
)

// Role is the author of a chat message.
type Role string

// The roles of the chat completions API.
const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	// RoleTool is a tool's result, answering one of the assistant's calls.
	RoleTool Role = "tool"
)

// Message is one chat message.
type Message struct {
	Role    Role   `json:"role"`
	Content string `json:"content"`
	// ToolCalls are the tools an assistant message asks to run.
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	// ToolCallID names the call a tool message answers.
	ToolCallID string `json:"tool_call_id,omitempty"`
}

// ToolCall is one tool call of an assistant message, as the chat
// completions API writes it.
type ToolCall struct {
	ID       string           `json:"id"`
	Type     string           `json:"type"` // "function"
	Function ToolCallFunction `json:"function"`
}

// ToolCallFunction is the function a tool call names, with its arguments
// (a JSON object, as a string).
type ToolCallFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// Request is one chat completion request.
type Request struct {
	// Model is the provider-side model name (the MODEL of PROVIDER/MODEL).
	Model string
	// Messages are sent in order: system prompt, history, the new user message.
	Messages []Message
	// Tools are the functions the model may call; nil offers none.
	Tools Toolbox
	// MaxToolRounds bounds the rounds of tool calls in one reply;
	// DefaultMaxToolRounds if 0.
	MaxToolRounds int
	// OnToolCall, when set, is told each tool call before it runs (so the
	// user can see that a tool is working).
	OnToolCall func(function string)

	offered    []chatTool // the tools field of this request (tool loop)
	toolChoice string     // "none" on the tool loop's last round
}

// Response is a completed reply.
type Response struct {
	Content string
	// Turns are the messages of the tool rounds before the reply (assistant
	// messages with tool calls, then the tool results), in order, for the
	// transcript.
	Turns []Message
	// ToolCalls are the calls the reply asks for (one round of the tool
	// loop; empty in a finished reply).
	ToolCalls []ToolCall
	// Model is the model that answered, as reported by the provider.
	Model string
	// FinishReason is the provider's reason for stopping ("stop", "length" …).
	FinishReason string
	// Usage is the token usage the provider reported; zero when it did not.
	Usage Usage
}

// Usage is the token usage a provider reports for one reply.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// Total returns prompt plus completion tokens.
func (u Usage) Total() int64 { return u.PromptTokens + u.CompletionTokens }

// Chunk is one piece of a streamed reply.
type Chunk struct {
	// Delta is the text added by this chunk.
	Delta string
	// FinishReason is set on the last chunk when the provider reports one.
	FinishReason string
	// Usage, when not nil, is the usage of the whole reply (OpenAI sends it
	// in a chunk of its own at the end when asked with
	// stream_options.include_usage).
	Usage *Usage
}

// Stream is a reply arriving in pieces. Recv returns io.EOF after the last
// chunk. Close releases the underlying connection; it is safe to call twice.
type Stream interface {
	Recv() (Chunk, error)
	Close() error
}

// Provider is one configured provider. It is safe for concurrent use by many
// agents. Close cancels every request in flight and closes idle connections;
// calls made after Close fail with an error of kind KindClosed.
type Provider interface {
	// Name is the provider's configured name.
	Name() string
	// Complete sends req and waits for the whole reply.
	Complete(ctx context.Context, req *Request) (*Response, error)
	// Stream sends req and returns the reply as it is produced (SSE).
	Stream(ctx context.Context, req *Request) (Stream, error)
	// Close releases everything the provider holds open.
	Close() error
}

// Defaults applied when a config value is zero.
const (
	DefaultTimeout        = 60 * time.Second
	DefaultMaxConnections = 32
)

// Config is one configured provider: a provider "NAME" block.
type Config struct {
	Name           string
	Type           string // "echo" or "openai"
	BaseURL        string
	APIKey         string            // sensitive: never logged or printed
	Timeout        time.Duration     // per request; DefaultTimeout if 0
	MaxConnections int               // DefaultMaxConnections if 0
	Headers        map[string]string // extra request headers
	// StreamIdleTimeout bounds the pause between two pieces of a streamed
	// reply; Timeout if 0.
	StreamIdleTimeout time.Duration
}

// Equal reports whether c and o build identical providers.
func (c Config) Equal(o Config) bool {
	return c.Name == o.Name && c.Type == o.Type && c.BaseURL == o.BaseURL && c.APIKey == o.APIKey &&
		c.Timeout == o.Timeout && c.MaxConnections == o.MaxConnections && maps.Equal(c.Headers, o.Headers) &&
		c.StreamIdleTimeout == o.StreamIdleTimeout
}

// New builds the provider c describes; opts may be nil.
func New(c Config, opts *Options) (Provider, error) {
	switch c.Type {
	case "echo":
		return NewEcho(c.Name), nil
	case "openai":
		return NewOpenAI(c, opts)
	default:
		return nil, fmt.Errorf("provider %q: unknown type %q (want \"echo\" or \"openai\")", c.Name, c.Type)
	}
}
