package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plughost/gateway/shared"
)

func TestDescribe(t *testing.T) {
	c := shared.TestPlatform(t, newAdapter())
	d, err := c.Describe(context.Background())
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if d.Name != "http" || d.Version == "" || d.Description == "" {
		t.Errorf("identity = %+v", d)
	}
	want := map[string]shared.Attribute{
		"listen":     {Name: "listen", Type: shared.TypeString, Default: "127.0.0.1:8788"},
		"auth_token": {Name: "auth_token", Type: shared.TypeString, Sensitive: true},
		"max_body":   {Name: "max_body", Type: shared.TypeNumber, Default: float64(65536)},
		"timeout":    {Name: "timeout", Type: shared.TypeDuration, Default: "120s"},
		// issue 20: connection cap, Host/Origin checks, explicit opt-in to an
		// open non-loopback listener.
		"max_connections":       {Name: "max_connections", Type: shared.TypeNumber, Default: float64(defaultMaxConnections)},
		"allowed_hosts":         {Name: "allowed_hosts", Type: shared.TypeListOfString},
		"allowed_origins":       {Name: "allowed_origins", Type: shared.TypeListOfString},
		"allow_unauthenticated": {Name: "allow_unauthenticated", Type: shared.TypeBool, Default: false},
		// issue 16: the web chat page.
		"web_ui": {Name: "web_ui", Type: shared.TypeBool, Default: true},
	}
	if len(d.Schema) != len(want) {
		t.Fatalf("schema = %+v", d.Schema)
	}
	for _, a := range d.Schema {
		w, ok := want[a.Name]
		if !ok || a.Type != w.Type || a.Sensitive != w.Sensitive || a.Required || a.Default != w.Default || a.Description == "" {
			t.Errorf("attribute %+v, want %+v", a, w)
		}
	}
}

func TestPostBecomesMessageAndSendCompletesIt(t *testing.T) {
	h := start(t, nil)
	pending := h.postAsync(`{"session":"alice","text":"hello"}`, nil)
	m := h.nextMessage()
	if m.ConversationID != "alice" || m.UserID != "alice" || m.Text != "hello" || !m.Direct || m.ID == "" || m.UnixNano == 0 {
		t.Fatalf("message = %+v", m)
	}
	ids, err := h.client.Send(context.Background(), shared.Reply{ConversationID: "alice", ReplyToID: m.ID, Text: "echo: hello", Kind: shared.KindReply})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(ids) != 1 || ids[0] != m.ID {
		t.Errorf("Send ids = %v, want [%s]", ids, m.ID)
	}
	r := h.await(pending)
	if r.Status != http.StatusOK || r.str("session") != "alice" || r.str("reply") != "echo: hello" || len(r.Body) != 2 {
		t.Errorf("response = %d %v, want 200 {session, reply}", r.Status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	// Notices (command answers) are replies too.
	pending = h.postAsync(`{"session":"alice","text":"/status"}`, nil)
	m = h.nextMessage()
	if _, err := h.client.Send(context.Background(), shared.Reply{ReplyToID: m.ID, Text: "State: idle", Kind: shared.KindNotice}); err != nil {
		t.Fatal(err)
	}
	if r := h.await(pending); r.Status != http.StatusOK || r.str("reply") != "State: idle" {
		t.Errorf("notice response = %d %v", r.Status, r.Body)
	}
	// The request is complete: a second reply to it has nowhere to go.
	if _, err := h.client.Send(context.Background(), shared.Reply{ReplyToID: m.ID, Text: "again"}); err == nil {
		t.Error("second Send to a completed request succeeded")
	}
}

func TestConcurrentRequestsGetTheirOwnReplies(t *testing.T) {
	const n = 20
	h := start(t, nil)
	answers := make([]<-chan response, n)
	for i := range n {
		answers[i] = h.postAsync(fmt.Sprintf(`{"session":"s%d","text":"q%d"}`, i, i), nil)
	}
	msgs := make([]*shared.Message, 0, n)
	for range n {
		msgs = append(msgs, h.nextMessage())
	}
	// Answer in reverse order of arrival.
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		if _, err := h.client.Send(context.Background(), shared.Reply{ReplyToID: m.ID, Text: "a" + strings.TrimPrefix(m.Text, "q"), Kind: shared.KindReply}); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	for i := range n {
		r := h.await(answers[i])
		if r.Status != http.StatusOK || r.str("session") != fmt.Sprint("s", i) || r.str("reply") != fmt.Sprint("a", i) {
			t.Errorf("request %d got %d %v", i, r.Status, r.Body)
		}
	}
}

func TestKindErrorIs502(t *testing.T) {
	h := start(t, nil)
	pending := h.postAsync(`{"session":"alice","text":"hello"}`, nil)
	m := h.nextMessage()
	if _, err := h.client.Send(context.Background(), shared.Reply{ReplyToID: m.ID, Text: "The agent could not reply: boom", Kind: shared.KindError}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := h.await(pending)
	if r.Status != http.StatusBadGateway || r.str("error") != "The agent could not reply: boom" || r.str("reply") != "" {
		t.Errorf("response = %d %v, want 502 {error}", r.Status, r.Body)
	}
}

func TestBadRequestsAre400(t *testing.T) {
	h := start(t, nil)
	for _, tc := range []struct{ name, body, want string }{
		{"bad JSON", `{"session":`, "not valid JSON"},
		{"not an object", `["a"]`, "not valid JSON"},
		{"empty text", `{"session":"alice","text":""}`, `"text"`},
		{"blank text", `{"session":"alice","text":"  \n "}`, `"text"`},
		{"no text", `{"session":"alice"}`, `"text"`},
		{"missing session", `{"text":"hello"}`, `"session"`},
		{"blank session", `{"session":" ","text":"hello"}`, `"session"`},
		{"trailing object", `{"session":"a","text":"hi"} {"x":1}`, "data after the JSON object"},
		{"trailing garbage", `{"session":"a","text":"hi"}}`, "data after the JSON object"},
		{"invalid UTF-8 text", "{\"session\":\"a\",\"text\":\"hi \xff\xfe\"}", "not valid UTF-8"},
		{"invalid UTF-8 session", "{\"session\":\"\xc3\",\"text\":\"hi\"}", "not valid UTF-8"},
		{"session too long", `{"session":"` + strings.Repeat("s", 40000) + `","text":"hi"}`, `"session" is 40000 bytes long; ids are at most 256 bytes`},
		{"control character in session", `{"session":"a\u0000b","text":"hi"}`, `"session" holds the control character U+0000`},
	} {
		r := h.post(tc.body, nil)
		if r.Status != http.StatusBadRequest || !strings.Contains(r.str("error"), tc.want) {
			t.Errorf("%s: %d %v, want 400 with an error about %s", tc.name, r.Status, r.Body, tc.want)
		}
	}
	// None of them reached the host: the next message is the good one.
	pending := h.postAsync(`{"session":"alice","text":"good"}`, nil)
	if m := h.nextMessage(); m.Text != "good" {
		t.Errorf("a bad request reached the host: %+v", m)
	} else if _, err := h.client.Send(context.Background(), shared.Reply{ReplyToID: m.ID, Text: "ok"}); err != nil {
		t.Fatal(err)
	}
	h.await(pending)
}

func TestAuthToken(t *testing.T) {
	h := start(t, map[string]any{"auth_token": "s3cret"})
	for name, header := range map[string]http.Header{
		"missing":      nil,
		"wrong":        {"Authorization": {"Bearer nope"}},
		"not bearer":   {"Authorization": {"Basic s3cret"}},
		"token prefix": {"Authorization": {"Bearer s3cre"}},
	} {
		r := h.post(`{"session":"alice","text":"hello"}`, header)
		if r.Status != http.StatusUnauthorized || r.str("error") == "" {
			t.Errorf("%s: %d %v, want 401 {error}", name, r.Status, r.Body)
		}
		if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate = %q", name, r.Header.Get("WWW-Authenticate"))
		}
		if strings.Contains(fmt.Sprint(r.Body), "s3cret") {
			t.Errorf("%s: the response shows the token", name)
		}
	}
	pending := h.postAsync(`{"session":"alice","text":"hello"}`, http.Header{"Authorization": {"Bearer s3cret"}})
	m := h.nextMessage()
	if m.Text != "hello" {
		t.Fatalf("message = %+v", m)
	}
	if _, err := h.client.Send(context.Background(), shared.Reply{ReplyToID: m.ID, Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	if r := h.await(pending); r.Status != http.StatusOK {
		t.Errorf("with the token: %d %v", r.Status, r.Body)
	}
}

func TestBodyOverMaxBodyIs413(t *testing.T) {
	h := start(t, map[string]any{"max_body": 64})
	r := h.post(`{"session":"alice","text":"`+strings.Repeat("x", 200)+`"}`, nil)
	if r.Status != http.StatusRequestEntityTooLarge || r.str("error") == "" {
		t.Errorf("response = %d %v, want 413 {error}", r.Status, r.Body)
	}
	// Just under the bound still goes through.
	pending := h.postAsync(`{"session":"alice","text":"`+strings.Repeat("y", 30)+`"}`, nil)
	m := h.nextMessage()
	if _, err := h.client.Send(context.Background(), shared.Reply{ReplyToID: m.ID, Text: "ok"}); err != nil {
		t.Fatal(err)
	}
	if r := h.await(pending); r.Status != http.StatusOK {
		t.Errorf("small body: %d %v", r.Status, r.Body)
	}
}

func TestNoReplyWithinTimeoutIs504(t *testing.T) {
	h := start(t, map[string]any{"timeout": "200ms"})
	began := time.Now()
	pending := h.postAsync(`{"session":"alice","text":"hello"}`, nil)
	m := h.nextMessage()
	r := h.await(pending)
	if r.Status != http.StatusGatewayTimeout || r.str("session") != "alice" || !strings.Contains(r.str("error"), "200ms") {
		t.Errorf("response = %d %v, want 504 {session, error}", r.Status, r.Body)
	}
	if took := time.Since(began); took < 200*time.Millisecond {
		t.Errorf("504 after %s, before the timeout", took)
	}
	// The late reply has no request to complete.
	if _, err := h.client.Send(context.Background(), shared.Reply{ReplyToID: m.ID, Text: "too late"}); err == nil {
		t.Error("Send to a timed-out request succeeded")
	}
}

func TestSendForUnknownIDFails(t *testing.T) {
	h := start(t, nil)
	_, err := h.client.Send(context.Background(), shared.Reply{ReplyToID: "never-asked", Text: "hi"})
	var fatal *shared.FatalError
	if err == nil || errors.As(err, &fatal) {
		t.Errorf("Send = %v, want a non-fatal error", err)
	}
}

func TestHealthzAndMethods(t *testing.T) {
	h := start(t, nil)
	if r := h.do(http.MethodGet, "/healthz", "", nil); r.Err != nil || r.Status != http.StatusOK || r.str("status") != "ok" {
		t.Errorf("GET /healthz = %d %v %v", r.Status, r.Body, r.Err)
	}
	r := h.do(http.MethodGet, "/v1/messages", "", nil)
	if r.Err != nil || r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "POST" {
		t.Errorf("GET /v1/messages = %d %v %v", r.Status, r.Header, r.Err)
	}
	if err := h.client.Typing(context.Background(), shared.Conversation{ConversationID: "alice"}); err != nil {
		t.Errorf("Typing = %v, want nil (HTTP has no indicator)", err)
	}
}

func TestConfigureRejectsBadConfigAsFatal(t *testing.T) {
	for _, tc := range []struct {
		name, raw, want string
	}{
		{"no port", `{"listen":"localhost"}`, "listen"},
		{"port out of range", `{"listen":"127.0.0.1:99999"}`, "listen"},
		{"port not a number", `{"listen":"127.0.0.1:http-ish"}`, "listen"},
		{"empty listen", `{"listen":""}`, "listen"},
		{"bad timeout", `{"listen":"127.0.0.1:0","timeout":"soon"}`, "timeout"},
		{"negative timeout", `{"listen":"127.0.0.1:0","timeout":"-1s"}`, "timeout"},
		{"wrong type", `{"listen":"127.0.0.1:0","max_body":"big"}`, "max_body"},
		{"max_body over the protocol's message size", `{"listen":"127.0.0.1:0","max_body":8388608}`, "max_body"},
		{"zero max_body", `{"listen":"127.0.0.1:0","max_body":0}`, "max_body 0 is not a positive number"},
		{"open to the network without a token", `{"listen":"0.0.0.0:0","auth_token":""}`, "auth_token is empty"},
		{"all interfaces without a token", `{"listen":":0"}`, "auth_token is empty"},
		{"origin without a scheme", `{"listen":"127.0.0.1:0","allowed_origins":["app.example.com"]}`, "allowed_origins"},
	} {
		c := shared.TestPlatform(t, newAdapter())
		err := c.Configure(context.Background(), shared.Config{Raw: []byte(tc.raw)})
		var fatal *shared.FatalError
		if !errors.As(err, &fatal) {
			t.Errorf("%s: Configure = %v (%T), want *FatalError", tc.name, err, err)
			continue
		}
		if fatal.Code != "invalid_config" || !strings.Contains(fatal.Message, tc.want) {
			t.Errorf("%s: fatal = %+v", tc.name, fatal)
		}
	}
}

// A non-loopback listener serves without a token only when the config says
// so explicitly.
func TestConfigureAcceptsAnOpenListenerOnlyWhenAskedTo(t *testing.T) {
	for _, raw := range []string{
		`{"listen":"0.0.0.0:0","auth_token":"t0ken"}`,
		`{"listen":"0.0.0.0:0","allow_unauthenticated":true}`,
		`{"listen":"127.0.0.1:0"}`,
		`{"listen":"localhost:0"}`,
	} {
		c := shared.TestPlatform(t, newAdapter())
		if err := c.Configure(context.Background(), shared.Config{Raw: []byte(raw)}); err != nil {
			t.Errorf("%s: %v", raw, err)
		}
	}
}

func TestStopEndsRunAndClosesListener(t *testing.T) {
	h := start(t, nil)
	if r := h.do(http.MethodGet, "/healthz", "", nil); r.Status != http.StatusOK {
		t.Fatalf("not serving before Stop: %d %v", r.Status, r.Err)
	}
	began := time.Now()
	if err := h.client.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := h.waitRun(); err != nil {
		t.Errorf("Run after Stop = %v, want nil", err)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("Run took %s to return after Stop", took)
	}
	waitClosed(t, h.addr)
	// A second Stop is harmless.
	if err := h.client.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestStopBeforeRunDoesNotListen(t *testing.T) {
	h := configure(t, nil)
	if err := h.client.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.run()
	if err := h.waitRun(); err != nil {
		t.Errorf("Run after Stop = %v, want nil", err)
	}
	waitClosed(t, h.addr)
}

func TestRunWithPortInUseIsTransient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := configure(t, map[string]any{"listen": ln.Addr().String()})
	h.run()
	err = h.waitRun()
	var fatal *shared.FatalError
	if err == nil || errors.As(err, &fatal) {
		t.Errorf("Run on a busy port = %v, want a transient error", err)
	}
}

// 503 means the host is not connected. The server only listens while Run
// runs, so before Run and after it a client gets "connection refused", not
// 503. These are the real situations in which a request reaches the plugin
// but the host cannot answer it.

// TestHostDisconnectWhileWaitingIs503: the host ends the Run stream (it is
// restarting the platform, or going away) while a request waits for its
// reply. The request must not hang until its timeout.
func TestHostDisconnectWhileWaitingIs503(t *testing.T) {
	h := start(t, nil) // default timeout 120s: a hang would show
	pending := h.postAsync(`{"session":"alice","text":"hello"}`, nil)
	m := h.nextMessage()
	h.cancel()
	r := h.await(pending)
	if r.Status != http.StatusServiceUnavailable || r.str("error") == "" {
		t.Errorf("response = %d %v, want 503 {error}", r.Status, r.Body)
	}
	if err := h.waitRun(); err != nil {
		t.Errorf("Run = %v", err)
	}
	waitClosed(t, h.addr)
	if _, err := h.client.Send(context.Background(), shared.Reply{ReplyToID: m.ID, Text: "late"}); err == nil {
		t.Error("Send to an abandoned request succeeded")
	}
}

// TestStopWhileWaitingIs503: the host stops the plugin (shutdown) while a
// request waits.
func TestStopWhileWaitingIs503(t *testing.T) {
	h := start(t, nil)
	pending := h.postAsync(`{"session":"alice","text":"hello"}`, nil)
	h.nextMessage()
	if err := h.client.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := h.await(pending)
	if r.Status != http.StatusServiceUnavailable || r.str("error") == "" {
		t.Errorf("response = %d %v, want 503 {error}", r.Status, r.Body)
	}
	if err := h.waitRun(); err != nil {
		t.Errorf("Run = %v", err)
	}
}

// TestStalledHostIs503: the host takes no events (its end of the stream is
// stuck), so the message cannot be handed over. Through gRPC that needs the
// stream's buffers and flow-control window filled first (hundreds of KB), so
// this test calls Run directly with an events channel nobody reads after the
// Connected event: exactly what the adapter sees when the host stalls.
func TestStalledHostIs503(t *testing.T) {
	a := newAdapter()
	addr := freeAddr(t)
	if err := a.Configure(context.Background(), shared.Config{Raw: []byte(`{"listen":"` + addr + `","timeout":"200ms"}`)}); err != nil {
		t.Fatal(err)
	}
	events := make(chan shared.Event) // unbuffered, and read once
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- a.Run(ctx, events) }()
	defer func() {
		cancel()
		select {
		case <-runDone:
		case <-time.After(waitTimeout):
			t.Error("Run did not return")
		}
	}()
	select {
	case <-events: // Connected
	case <-time.After(waitTimeout):
		t.Fatal("no Connected event")
	}
	h := &harness{t: t, addr: addr, http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	began := time.Now()
	r := h.post(`{"session":"alice","text":"hello"}`, nil)
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(r.str("error"), "not taking messages") {
		t.Errorf("response = %d %v, want 503 {error}", r.Status, r.Body)
	}
	if took := time.Since(began); took < 200*time.Millisecond {
		t.Errorf("gave up after %s, before the timeout", took)
	}
	a.mu.Lock()
	n := len(a.pending)
	a.mu.Unlock()
	if n != 0 {
		t.Errorf("%d requests still pending", n)
	}
}

// TestRunSendsNothingAfterItReturns races requests against the end of Run:
// every request answers, none hangs, and Run never sends after returning
// (the race detector and a closed channel would both catch that).
func TestRunSendsNothingAfterItReturns(t *testing.T) {
	for range 5 {
		a := newAdapter()
		addr := freeAddr(t)
		if err := a.Configure(context.Background(), shared.Config{Raw: []byte(`{"listen":"` + addr + `"}`)}); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		closed := false
		events := make(chan shared.Event, 1)
		ctx, cancel := context.WithCancel(context.Background())
		runDone := make(chan error, 1)
		go func() {
			err := a.Run(ctx, events)
			mu.Lock()
			closed = true
			close(events) // a send after this panics
			mu.Unlock()
			runDone <- err
		}()
		<-events // Connected
		// Drain like a host would, until Run returns.
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			for range events {
			}
		}()
		h := &harness{t: t, addr: addr, http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				r := h.do(http.MethodPost, "/v1/messages", fmt.Sprintf(`{"session":"s%d","text":"x"}`, i), nil)
				if r.Err == nil && r.Status != http.StatusServiceUnavailable {
					t.Errorf("request %d: %d %v", i, r.Status, r.Body)
				}
			})
		}
		cancel()
		wg.Wait()
		<-runDone
		<-drained
		mu.Lock()
		if !closed {
			t.Error("Run did not return")
		}
		mu.Unlock()
	}
}
