// Package providertest is an OpenAI-compatible chat completions server for
// tests. It runs on 127.0.0.1, speaks the real protocol (JSON and SSE), and
// counts TCP connections through http.Server.ConnState, so tests can prove how
// many connections a client holds open.
package providertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Message is a chat message as received.
type Message struct {
	Role       string     `json:"role"`
	Content    string     `json:"content"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

// ToolCall is a tool call, as an assistant message carries it.
type ToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// Call builds a function tool call.
func Call(id, name, arguments string) ToolCall {
	c := ToolCall{ID: id, Type: "function"}
	c.Function.Name, c.Function.Arguments = name, arguments
	return c
}

// Tool is one entry of a request's tools.
type Tool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// Request is a chat completions request as received.
type Request struct {
	Model    string    `json:"model"`
	Messages []Message `json:"messages"`
	Stream   bool      `json:"stream"`
	// StreamOptions is the request's stream_options, nil when absent.
	StreamOptions *StreamOptions `json:"stream_options"`
	Tools         []Tool         `json:"tools"`
	// ToolChoice is "none" when the client forbids tool calls.
	ToolChoice string `json:"tool_choice"`
	// Authorization is the request's Authorization header.
	Authorization string `json:"-"`
	// Header is the full request header.
	Header http.Header `json:"-"`
}

// StreamOptions is a request's stream_options.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// ToolNames lists the names of the functions offered, in order.
func (r *Request) ToolNames() []string {
	var out []string
	for _, t := range r.Tools {
		out = append(out, t.Function.Name)
	}
	return out
}

// System returns the content of the first system message.
func (r *Request) System() string {
	for _, m := range r.Messages {
		if m.Role == "system" {
			return m.Content
		}
	}
	return ""
}

// LastUser returns the content of the last user message.
func (r *Request) LastUser() string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			return r.Messages[i].Content
		}
	}
	return ""
}

// Scripted is a canned error answer served instead of a normal reply.
type Scripted struct {
	Status     int
	RetryAfter string // Retry-After header, "" for none
	Body       string // JSON body; default {"error":{"message":...}}
	// Drop closes the connection without answering (a connection reset).
	Drop bool
	// Location, with a 3xx Status, answers a redirect to it.
	Location string
	// Stall answers 200 with event-stream headers and one chunk, then sends
	// nothing until the client goes away (a stream stalled after headers).
	Stall bool
}

// Server is the fake provider. Set its fields before the first request.
type Server struct {
	// URL is the base URL to configure (ends in /v1).
	URL string

	// APIKey, when set, makes any other bearer token get a 401.
	APIKey string
	// Models, when set, makes any other model get a 404 model_not_found.
	Models []string
	// Reply computes the answer; default "reply to: " + the last user message.
	Reply func(*Request) string
	// Usage computes the token usage reported with each reply; default
	// CountWords. It is reported in every non-streamed reply, and in a last
	// chunk of a streamed one when the request asked with
	// stream_options.include_usage, as OpenAI does.
	Usage func(r *Request, reply string) (prompt, completion int)
	// Calls, when set and returning calls, makes the answer ask for those
	// tool calls (finish_reason "tool_calls") instead of a reply.
	Calls func(*Request) []ToolCall
	// Hold, when set, is called before answering; it may block (a slow reply)
	// and should return when ctx ends (the client went away).
	Hold func(ctx context.Context, r *Request)
	// ChunkHold, when set, is called before each streamed chunk of text
	// after the first (i counts from 1); it may block, to hold a streamed
	// reply midway, and should return when ctx ends.
	ChunkHold func(ctx context.Context, r *Request, i int)

	ts *httptest.Server

	mu       sync.Mutex
	script   []Scripted
	requests []*Request

	open     atomic.Int64 // TCP connections open now
	peak     atomic.Int64
	accepted atomic.Int64
	inFlight atomic.Int64
	served   atomic.Int64
}

// New starts a server; it is closed when the test ends.
func New(t interface{ Cleanup(func()) }) *Server {
	s := &Server{}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(s.handle))
	ts.Config.ConnState = s.connState
	ts.Listener.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("providertest: listen: %v", err))
	}
	ts.Listener = l
	ts.Start()
	s.ts = ts
	s.URL = ts.URL + "/v1"
	t.Cleanup(s.Close)
	return s
}

// Close stops the server and closes every connection.
func (s *Server) Close() { s.ts.Close() }

func (s *Server) connState(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		s.accepted.Add(1)
		n := s.open.Add(1)
		for {
			p := s.peak.Load()
			if n <= p || s.peak.CompareAndSwap(p, n) {
				break
			}
		}
	case http.StateClosed, http.StateHijacked:
		s.open.Add(-1)
	}
}

// OpenConns returns the TCP connections open now.
func (s *Server) OpenConns() int64 { return s.open.Load() }

// PeakConns returns the most TCP connections ever open at once.
func (s *Server) PeakConns() int64 { return s.peak.Load() }

// AcceptedConns returns how many TCP connections were accepted in total.
func (s *Server) AcceptedConns() int64 { return s.accepted.Load() }

// InFlight returns the requests being answered now.
func (s *Server) InFlight() int64 { return s.inFlight.Load() }

// Served returns how many requests were received.
func (s *Server) Served() int64 { return s.served.Load() }

// Script queues canned answers served, in order, before normal replies.
func (s *Server) Script(answers ...Scripted) {
	s.mu.Lock()
	s.script = append(s.script, answers...)
	s.mu.Unlock()
}

// Requests returns the requests received so far, in order.
func (s *Server) Requests() []*Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Request(nil), s.requests...)
}

// LastRequest returns the last request received, or nil.
func (s *Server) LastRequest() *Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) == 0 {
		return nil
	}
	return s.requests[len(s.requests)-1]
}

func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": code}})
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.served.Add(1)
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
		writeError(w, http.StatusNotFound, "invalid_request_error", "unknown_url", "unknown URL "+r.URL.Path)
		return
	}
	var req Request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "bad JSON: "+err.Error())
		return
	}
	req.Authorization = r.Header.Get("Authorization")
	req.Header = r.Header.Clone()
	s.mu.Lock()
	s.requests = append(s.requests, &req)
	var sc *Scripted
	if len(s.script) > 0 {
		sc = &s.script[0]
		s.script = s.script[1:]
	}
	s.mu.Unlock()

	if sc != nil && sc.Drop {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // RST, not FIN
				}
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	if sc != nil && sc.Stall {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, `data: {"choices":[{"index":0,"delta":{"content":"stalled "}}]}`+"\n\n")
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		<-r.Context().Done()
		return
	}
	if sc != nil {
		if sc.Location != "" {
			w.Header().Set("Location", sc.Location)
		}
		if sc.RetryAfter != "" {
			w.Header().Set("Retry-After", sc.RetryAfter)
		}
		body := sc.Body
		if body == "" {
			body = fmt.Sprintf(`{"error":{"message":"scripted %d","type":"scripted","code":null}}`, sc.Status)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(sc.Status)
		_, _ = w.Write([]byte(body))
		return
	}
	if s.APIKey != "" && req.Authorization != "Bearer "+s.APIKey {
		writeError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "Incorrect API key provided.")
		return
	}
	if len(s.Models) > 0 && !contains(s.Models, req.Model) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "model_not_found",
			fmt.Sprintf("The model `%s` does not exist.", req.Model))
		return
	}
	if s.Hold != nil {
		s.Hold(r.Context(), &req)
		if r.Context().Err() != nil {
			return
		}
	}
	if s.Calls != nil && !req.Stream {
		if calls := s.Calls(&req); len(calls) > 0 {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"id": "chatcmpl-test", "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model,
				"choices": []any{map[string]any{"index": 0, "finish_reason": "tool_calls",
					"message": map[string]any{"role": "assistant", "content": nil, "tool_calls": calls}}},
			})
			return
		}
	}
	reply := "reply to: " + req.LastUser()
	if s.Reply != nil {
		reply = s.Reply(&req)
	}
	usage := s.usage(&req, reply)
	if req.Stream {
		s.stream(r.Context(), w, &req, reply, usage)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-test", "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model,
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": reply}}},
		"usage": usage,
	})
}

// usage is the "usage" object of a reply.
func (s *Server) usage(req *Request, reply string) map[string]int {
	count := s.Usage
	if count == nil {
		count = CountWords
	}
	p, c := count(req, reply)
	return map[string]int{"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
}

// CountWords is the default token count: the words of every request
// message (prompt) and of the reply (completion).
func CountWords(r *Request, reply string) (prompt, completion int) {
	for _, m := range r.Messages {
		prompt += len(strings.Fields(m.Content))
	}
	return prompt, len(strings.Fields(reply))
}

// stream answers with server-sent events, one word per chunk, then the
// usage chunk when asked for.
func (s *Server) stream(ctx context.Context, w http.ResponseWriter, req *Request, reply string, usage map[string]int) {
	w.Header().Set("Content-Type", "text/event-stream")
	fl, _ := w.(http.Flusher)
	send := func(delta map[string]any, finish any) {
		b, _ := json.Marshal(map[string]any{"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}})
		fmt.Fprintf(w, "data: %s\n\n", b)
		if fl != nil {
			fl.Flush()
		}
	}
	send(map[string]any{"role": "assistant"}, nil)
	fmt.Fprint(w, ": keep-alive\n\n")
	words := strings.SplitAfter(reply, " ")
	for i, wd := range words {
		if i > 0 && s.ChunkHold != nil {
			s.ChunkHold(ctx, req, i)
			if ctx.Err() != nil {
				return
			}
		}
		send(map[string]any{"content": wd}, nil)
	}
	send(map[string]any{}, "stop")
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		b, _ := json.Marshal(map[string]any{"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": req.Model,
			"choices": []any{}, "usage": usage})
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if fl != nil {
		fl.Flush()
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// WaitOpenConns polls until at most n connections are open or the deadline
// passes, and returns the count it saw last.
func (s *Server) WaitOpenConns(n int64, within time.Duration) int64 {
	deadline := time.Now().Add(within)
	for {
		c := s.open.Load()
		if c <= n || time.Now().After(deadline) {
			return c
		}
		time.Sleep(5 * time.Millisecond)
	}
}
