// Package provider talks to LLM providers: the embedded echo provider and any
// OpenAI-compatible chat completions API.
//
// Connection ownership (the design call behind invariant 2, "no leaked
// clients"): each configured provider owns exactly one http.Transport, shared
// by every agent that uses it, with MaxConnsPerHost = max_connections
// (default 32). That is the idiomatic Go answer: a Transport is a connection
// pool meant to be shared and reused, and a single pool makes the bound on
// open connections a property of the provider rather than of how many agents
// happen to exist. A pool per agent is exactly what leaked in the seed system:
// every evicted agent's idle connections stayed open until the peer timed them
// out, so open connections grew with churn instead of with load.
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
)

// Message is one chat message.
type Message struct {
	Role    Role   `json:"role"`
	Content string `json:"content"`
}

// Request is one chat completion request.
type Request struct {
	// Model is the provider-side model name (the MODEL of PROVIDER/MODEL).
	Model string
	// Messages are sent in order: system prompt, history, the new user message.
	Messages []Message
}

// Response is a completed reply.
type Response struct {
	Content string
	// Model is the model that answered, as reported by the provider.
	Model string
	// FinishReason is the provider's reason for stopping ("stop", "length" …).
	FinishReason string
}

// Chunk is one piece of a streamed reply.
type Chunk struct {
	// Delta is the text added by this chunk.
	Delta string
	// FinishReason is set on the last chunk when the provider reports one.
	FinishReason string
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
