package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plughost/gateway/shared"

	"github.com/plughost/gateway/shared/kit/fakekit"
)

// waitTimeout bounds every wait; nothing here should come near it.
const waitTimeout = 5 * time.Second

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := fakekit.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// harness is the plugin served over a real gRPC connection, configured and
// running, as the host sees it.
type harness struct {
	t       *testing.T
	client  *shared.GRPCClient
	addr    string
	events  chan shared.Event
	cancel  context.CancelFunc
	runDone chan error
	http    *http.Client
}

// configure serves a new adapter and configures it with cfg, plus a free
// listen address unless cfg has one.
func configure(t *testing.T, cfg map[string]any) *harness {
	t.Helper()
	h := &harness{
		t:      t,
		client: shared.TestPlatform(t, newAdapter()),
		// No keep-alive: no idle connection outlives a test.
		http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	}
	if cfg == nil {
		cfg = map[string]any{}
	}
	if _, ok := cfg["listen"]; !ok {
		cfg["listen"] = freeAddr(t)
	}
	h.addr, _ = cfg["listen"].(string)
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.client.Configure(context.Background(), shared.Config{Raw: raw}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return h
}

// start configures the plugin, runs it and waits until it reports Connected.
func start(t *testing.T, cfg map[string]any) *harness {
	t.Helper()
	h := configure(t, cfg)
	h.run()
	ev := h.nextEvent()
	if ev.Health == nil || ev.Health.State != shared.Connected {
		t.Fatalf("first event = %+v, want Connected", ev)
	}
	return h
}

// run starts the host's Run; it is cancelled and awaited at the end of the test.
func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.events = make(chan shared.Event, 16)
	h.runDone = make(chan error, 1)
	go func() { h.runDone <- h.client.Run(ctx, h.events) }()
	h.t.Cleanup(func() {
		cancel()
		select {
		case <-h.runDone:
		case <-time.After(waitTimeout):
			h.t.Error("Run did not return at the end of the test")
		}
	})
}

// waitRun waits for the host's Run to return.
func (h *harness) waitRun() error {
	h.t.Helper()
	select {
	case err := <-h.runDone:
		h.runDone <- err // for the cleanup
		return err
	case <-time.After(waitTimeout):
		h.t.Fatal("Run did not return")
		return nil
	}
}

func (h *harness) nextEvent() shared.Event {
	h.t.Helper()
	select {
	case ev := <-h.events:
		return ev
	case <-time.After(waitTimeout):
		h.t.Fatal("no event from the plugin")
		return shared.Event{}
	}
}

// nextMessage waits for the next inbound message, skipping health events.
func (h *harness) nextMessage() *shared.Message {
	h.t.Helper()
	for {
		if ev := h.nextEvent(); ev.Message != nil {
			return ev.Message
		}
	}
}

// response is an HTTP answer, decoded.
type response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Err    error
}

func (r response) str(key string) string {
	s, _ := r.Body[key].(string)
	return s
}

// do sends one request to the plugin.
func (h *harness) do(method, path, body string, header http.Header) response {
	req, err := http.NewRequest(method, "http://"+h.addr+path, strings.NewReader(body))
	if err != nil {
		return response{Err: err}
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json") // a test may override it
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return response{Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	out := response{Status: resp.StatusCode, Header: resp.Header, Err: err}
	if err == nil {
		if jerr := json.Unmarshal(b, &out.Body); jerr != nil {
			out.Err = jerr
		}
	}
	return out
}

// postAsync posts body to /v1/messages and returns where the answer comes.
func (h *harness) postAsync(body string, header http.Header) <-chan response {
	out := make(chan response, 1)
	go func() { out <- h.do(http.MethodPost, "/v1/messages", body, header) }()
	return out
}

func (h *harness) post(body string, header http.Header) response {
	h.t.Helper()
	return h.await(h.postAsync(body, header))
}

func (h *harness) await(ch <-chan response) response {
	h.t.Helper()
	select {
	case r := <-ch:
		if r.Err != nil {
			h.t.Fatalf("request failed: %v", r.Err)
		}
		return r
	case <-time.After(waitTimeout):
		h.t.Fatal("no HTTP response")
		return response{}
	}
}

// waitClosed waits until nothing accepts connections on addr.
func waitClosed(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections", addr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// timeAfterWait fires after waitTimeout.
func timeAfterWait() <-chan time.Time { return time.After(waitTimeout) }
