package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/plughost/gateway/shared"
)

// GET /v1/sessions/{id}/messages: behind auth_token like every /v1/ path,
// a bad id is a 400, and a host that cannot answer (protocol 1, which the
// test's connection speaks) is a clear 501.
func TestSessionMessagesEndpointErrors(t *testing.T) {
	h := start(t, map[string]any{"auth_token": "s3cret"})
	auth := http.Header{"Authorization": {"Bearer s3cret"}}
	if r := h.do(http.MethodGet, "/v1/sessions/alice/messages", "", nil); r.Err != nil || r.Status != http.StatusUnauthorized {
		t.Errorf("no token: %d %v, want 401", r.Status, r.Err)
	}
	if r := h.do(http.MethodGet, "/v1/sessions/%01/messages", "", auth); r.Err != nil || r.Status != http.StatusBadRequest {
		t.Errorf("control character in the id: %d %v, want 400", r.Status, r.Err)
	}
	r := h.do(http.MethodGet, "/v1/sessions/alice/messages", "", auth)
	errObj, _ := r.Body["error"].(map[string]any)
	if r.Err != nil || r.Status != http.StatusNotImplemented || errObj["code"] != "not_supported" {
		t.Errorf("protocol 1 host: %d %v %v, want 501 not_supported", r.Status, r.Body, r.Err)
	}
}

// Over protocol 2 the plugin asks the host, and answers with what it got.
func TestSessionMessagesFromTheHost(t *testing.T) {
	p := startV2(t)
	type result struct {
		status int
		body   map[string]any
		err    error
	}
	out := make(chan result, 1)
	get := func(path string) {
		go func() {
			var r result
			resp, err := http.Get("http://" + p.addr + path)
			if err == nil {
				defer resp.Body.Close()
				r.status = resp.StatusCode
				err = json.NewDecoder(resp.Body).Decode(&r.body)
			}
			r.err = err
			out <- r
		}()
	}
	get("/v1/sessions/alice/messages")
	ev := p.next()
	if ev.Transcript == nil || ev.Transcript.Conversation.ConversationID != "alice" {
		t.Fatalf("event = %+v, want a transcript request for alice", ev)
	}
	ev.Transcript.Answer(shared.Transcript{Truncated: true, Messages: []shared.TranscriptMessage{
		{Role: "user", Text: "hi", UnixNano: 2e9}, {Role: "assistant", Text: "<b>hello</b>", UnixNano: 3e9}}}, nil)
	r := <-out
	b, _ := json.Marshal(r.body)
	want := `{"data":[{"content":"hi","created":2,"role":"user"},{"content":"\u003cb\u003ehello\u003c/b\u003e","created":3,"role":"assistant"}],"object":"list","session":"alice","truncated":true}`
	if r.err != nil || r.status != http.StatusOK || string(b) != want {
		t.Errorf("answer %d %s (%v), want %s", r.status, b, r.err, want)
	}
	// The host's failure is a 500 in OpenAI's shape.
	get("/v1/sessions/bob/messages")
	p.next().Transcript.Answer(shared.Transcript{}, errors.New("the store is closed"))
	r = <-out
	errObj, _ := r.body["error"].(map[string]any)
	if r.status != http.StatusInternalServerError || !strings.Contains(errObj["message"].(string), "the store is closed") {
		t.Errorf("host failure: %d %v", r.status, r.body)
	}
}
