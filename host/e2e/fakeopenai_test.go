package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeOpenAI is an OpenAI-compatible chat completions server on loopback.
// Its reply names how many user messages the request carried and the last
// one, so tests can see the history the gateway sent. A user message
// "slow N" makes it wait N milliseconds first.
type fakeOpenAI struct {
	srv      *httptest.Server
	requests atomic.Int64
	open     atomic.Int64 // TCP connections open now
	peak     atomic.Int64

	mu   sync.Mutex
	last []chatMessage
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

func newFakeOpenAI(t *testing.T) *fakeOpenAI {
	t.Helper()
	f := &fakeOpenAI{}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.handle))
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			n := f.open.Add(1)
			for {
				p := f.peak.Load()
				if n <= p || f.peak.CompareAndSwap(p, n) {
					break
				}
			}
		case http.StateClosed, http.StateHijacked:
			f.open.Add(-1)
		}
	}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the base_url to configure.
func (f *fakeOpenAI) URL() string { return f.srv.URL + "/v1" }

func (f *fakeOpenAI) handle(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/chat/completions" {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer sk-test-key" {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`)
		return
	}
	f.requests.Add(1)
	var req struct {
		Model    string        `json:"model"`
		Messages []chatMessage `json:"messages"`
		Stream   bool          `json:"stream"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.last = req.Messages
	f.mu.Unlock()
	users := 0
	last := ""
	for _, m := range req.Messages {
		if m.Role == "user" {
			users++
			last = m.Content
		}
	}
	var ms int
	if _, err := fmt.Sscanf(last, "slow %d", &ms); err == nil {
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
	}
	content := fmt.Sprintf("turns=%d last=%s", users, last)
	if req.Stream {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, part := range strings.SplitAfter(content, " ") {
			b, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]string{"content": part}}}})
			fmt.Fprintf(w, "data: %s\n\n", b)
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "model": req.Model,
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]string{"role": "assistant", "content": content}}},
	})
}

// lastMessages returns the messages of the latest request.
func (f *fakeOpenAI) lastMessages() []chatMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]chatMessage(nil), f.last...)
}
