package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plughost/gateway/host/provider/providertest"
)

// sseEvent is one server-sent event.
type sseEvent struct {
	Name string
	Data map[string]string
}

// sseClient reads a streamed POST /v1/messages as its events arrive.
type sseClient struct {
	t      *testing.T
	resp   *http.Response
	events chan sseEvent
}

func postStream(t *testing.T, addr, body string) *sseClient {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/v1/messages", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("streamed POST = %d %s, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	c := &sseClient{t: t, resp: resp, events: make(chan sseEvent, 100)}
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.Name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.Data)
			case line == "" && ev.Name != "":
				c.events <- ev
				ev = sseEvent{}
			}
		}
	}()
	return c
}

// next returns the next event; ok is false when the stream ended.
func (c *sseClient) next() (sseEvent, bool) {
	c.t.Helper()
	select {
	case ev, ok := <-c.events:
		return ev, ok
	case <-time.After(30 * time.Second):
		c.t.Fatal("no event within 30s")
		return sseEvent{}, false
	}
}

// rest reads the stream to its end: the streamed text and the last event.
func (c *sseClient) rest(streamed *strings.Builder) sseEvent {
	c.t.Helper()
	for {
		ev, ok := c.next()
		if !ok {
			c.t.Fatal("the stream ended without a reply or error event")
		}
		if ev.Name != "delta" {
			if _, more := c.next(); more {
				c.t.Errorf("events after %q", ev.Name)
			}
			return ev
		}
		streamed.WriteString(ev.Data["text"])
	}
}

// heldOpenAI is the fake provider whose streamed replies stop before their
// third word until release is called, once per request.
type heldOpenAI struct {
	*providertest.Server
	mu      sync.Mutex
	release chan struct{}
}

func newHeldOpenAI(t *testing.T) *heldOpenAI {
	h := &heldOpenAI{Server: newFakeOpenAI(t), release: make(chan struct{})}
	h.Reply = func(r *providertest.Request) string { return "alpha beta gamma for " + r.LastUser() }
	h.ChunkHold = func(ctx context.Context, r *providertest.Request, i int) {
		if i != 2 || !strings.HasPrefix(r.LastUser(), "hold") {
			return
		}
		h.mu.Lock()
		ch := h.release
		h.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
	return h
}

func (h *heldOpenAI) releaseOne() {
	h.mu.Lock()
	close(h.release)
	h.release = make(chan struct{})
	h.mu.Unlock()
}

// TestHTTPStreamedReply: with "stream": true, text arrives before the
// provider has finished, the deltas add up to the final reply, the final
// reply is what the transcript keeps, and /stop ends a streamed reply where
// it is and says so, keeping nothing of it.
func TestHTTPStreamedReply(t *testing.T) {
	ai := newHeldOpenAI(t)
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(openAIConfig(ai.Server, "sk-test-key", "") + httpPlatform("web", web, ""))
	e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))

	c := postStream(t, web, `{"session":"s","text":"hold one","stream":true}`)
	first, _ := c.next()
	if first.Name != "delta" || !strings.HasPrefix("alpha beta ", first.Data["text"]) || first.Data["text"] == "" {
		t.Fatalf("first event = %+v, want a delta of the reply's start while the provider holds", first)
	}
	var streamed strings.Builder
	streamed.WriteString(first.Data["text"])
	ai.releaseOne()
	last := c.rest(&streamed)
	want := "alpha beta gamma for hold one"
	if last.Name != "reply" || last.Data["reply"] != want || last.Data["session"] != "s" {
		t.Fatalf("last event = %+v, want reply %q", last, want)
	}
	if streamed.String() != want {
		t.Errorf("deltas add up to %q, want %q", streamed.String(), want)
	}

	// /stop mid-stream.
	c = postStream(t, web, `{"session":"s","text":"hold two","stream":true}`)
	if ev, _ := c.next(); ev.Name != "delta" {
		t.Fatalf("event = %+v, want a delta", ev)
	}
	if code, body := post(t, web, `{"session":"s","text":"/stop"}`); code != 200 {
		t.Fatalf("/stop = %d %v", code, body)
	}
	if last = c.rest(&strings.Builder{}); last.Name != "error" || last.Data["error"] != "Stopped." {
		t.Fatalf("last event after /stop = %+v, want error Stopped.", last)
	}

	// The transcript holds the final reply of the first turn and nothing of
	// the stopped one.
	if code, body := post(t, web, `{"session":"s","text":"three"}`); code != 200 || body["reply"] != "alpha beta gamma for three" {
		t.Fatalf("POST three = %d %v", code, body)
	}
	var hist []string
	for _, m := range ai.LastRequest().Messages[1:] {
		hist = append(hist, m.Role+":"+m.Content)
	}
	if got, want := strings.Join(hist, "|"), "user:hold one|assistant:"+want+"|user:three"; got != want {
		t.Errorf("history sent to the provider = %q, want %q", got, want)
	}
}
