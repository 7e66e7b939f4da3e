package provider

import (
	"context"
	"io"
	"sync"
)

// Echo is the embedded default provider: no network, no key. Its reply is
// "echo: " followed by the last user message.
type Echo struct {
	name string
	mu   sync.Mutex
	shut bool
}

var _ Provider = (*Echo)(nil)

// NewEcho returns an echo provider named name.
func NewEcho(name string) *Echo { return &Echo{name: name} }

// Name returns the provider's configured name.
func (e *Echo) Name() string { return e.name }

// Complete answers with "echo: " + the last user message.
func (e *Echo) Complete(ctx context.Context, req *Request) (*Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.mu.Lock()
	shut := e.shut
	e.mu.Unlock()
	if shut {
		return nil, &Error{Provider: e.name, Kind: KindClosed, Message: "provider closed"}
	}
	return &Response{Content: "echo: " + lastUser(req.Messages), Model: req.Model, FinishReason: "stop"}, nil
}

// Stream returns the echo reply as a single chunk.
func (e *Echo) Stream(ctx context.Context, req *Request) (Stream, error) {
	resp, err := e.Complete(ctx, req)
	if err != nil {
		return nil, err
	}
	return &sliceStream{chunks: []Chunk{{Delta: resp.Content, FinishReason: "stop"}}}, nil
}

// Close marks the provider closed; it holds nothing open.
func (e *Echo) Close() error {
	e.mu.Lock()
	e.shut = true
	e.mu.Unlock()
	return nil
}

func lastUser(msgs []Message) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == RoleUser {
			return msgs[i].Content
		}
	}
	return ""
}

type sliceStream struct {
	chunks []Chunk
}

func (s *sliceStream) Recv() (Chunk, error) {
	if len(s.chunks) == 0 {
		return Chunk{}, io.EOF
	}
	c := s.chunks[0]
	s.chunks = s.chunks[1:]
	return c, nil
}

func (s *sliceStream) Close() error { s.chunks = nil; return nil }
