package provider

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plughost/gateway/host/provider/providertest"
)

const testKey = "sk-test-secret-123"

func newTestProvider(t *testing.T, srv *providertest.Server, mod func(*Config), retry RetryPolicy) *OpenAI {
	t.Helper()
	pc := Config{Name: "fake", Type: "openai", BaseURL: srv.URL, APIKey: testKey,
		Timeout: 5 * time.Second, MaxConnections: 4, Headers: map[string]string{"X-Title": "gateway"}}
	if mod != nil {
		mod(&pc)
	}
	if retry.BaseDelay == 0 {
		retry.BaseDelay = time.Millisecond
	}
	p, err := NewOpenAI(pc, &Options{Retry: retry})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		if n := srv.WaitOpenConns(0, 5*time.Second); n != 0 {
			t.Errorf("%d connections still open after provider Close", n)
		}
	})
	return p
}

func userReq(text string) *Request {
	return &Request{Model: "m1", Messages: []Message{
		{Role: RoleSystem, Content: "sys"},
		{Role: RoleUser, Content: "earlier"},
		{Role: RoleAssistant, Content: "earlier reply"},
		{Role: RoleUser, Content: text},
	}}
}

func TestOpenAICompleteSendsMessagesKeyAndHeaders(t *testing.T) {
	srv := providertest.New(t)
	srv.APIKey = testKey
	p := newTestProvider(t, srv, nil, RetryPolicy{})
	resp, err := p.Complete(context.Background(), userReq("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "reply to: hi" || resp.FinishReason != "stop" || resp.Model != "m1" {
		t.Fatalf("resp = %+v", resp)
	}
	r := srv.LastRequest()
	if len(r.Messages) != 4 || r.Messages[0].Role != "system" || r.Messages[2].Content != "earlier reply" || r.Model != "m1" {
		t.Fatalf("server got %+v", r)
	}
	if r.Header.Get("X-Title") != "gateway" || r.Authorization != "Bearer "+testKey {
		t.Fatalf("headers not sent: %v", r.Header)
	}
}

func TestOpenAI401IsAuthAndNotRetried(t *testing.T) {
	srv := providertest.New(t)
	srv.APIKey = "another-key"
	srv.Script(providertest.Scripted{Status: 401, Body: `{"error":{"message":"Incorrect API key provided: ` + testKey + `"}}`})
	p := newTestProvider(t, srv, nil, RetryPolicy{})
	_, err := p.Complete(context.Background(), userReq("hi"))
	var pe *Error
	if !errors.As(err, &pe) || pe.Kind != KindAuth || pe.Status != 401 {
		t.Fatalf("err = %v; want KindAuth 401", err)
	}
	if srv.Served() != 1 {
		t.Fatalf("served %d requests; a 401 must not be retried", srv.Served())
	}
	if strings.Contains(err.Error(), testKey) {
		t.Fatalf("error leaks the API key: %v", err)
	}
}

func TestOpenAI429HonoursRetryAfter(t *testing.T) {
	srv := providertest.New(t)
	srv.Script(providertest.Scripted{Status: 429, RetryAfter: "1"})
	p := newTestProvider(t, srv, nil, RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond})
	start := time.Now()
	resp, err := p.Complete(context.Background(), userReq("hi"))
	if err != nil || resp.Content != "reply to: hi" {
		t.Fatalf("Complete = %v, %v", resp, err)
	}
	// The backoff alone would wait ~1ms: waiting a second proves Retry-After won.
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Fatalf("retried after %v; Retry-After: 1 not honoured", waited)
	}
	if srv.Served() != 2 {
		t.Fatalf("served %d; want 2", srv.Served())
	}
}

func TestOpenAI429RetriesAreBounded(t *testing.T) {
	srv := providertest.New(t)
	for range 5 {
		srv.Script(providertest.Scripted{Status: 429})
	}
	p := newTestProvider(t, srv, nil, RetryPolicy{MaxAttempts: 3})
	_, err := p.Complete(context.Background(), userReq("hi"))
	var pe *Error
	if !errors.As(err, &pe) || pe.Kind != KindRateLimited || pe.Attempts != 3 {
		t.Fatalf("err = %v; want rate limited after 3 attempts", err)
	}
	if srv.Served() != 3 {
		t.Fatalf("served %d; want 3", srv.Served())
	}
}

func TestOpenAIRetryAfterTooLongFailsAtOnce(t *testing.T) {
	srv := providertest.New(t)
	srv.Script(providertest.Scripted{Status: 429, RetryAfter: "3600"})
	p := newTestProvider(t, srv, nil, RetryPolicy{MaxAttempts: 3})
	_, err := p.Complete(context.Background(), userReq("hi"))
	if KindOf(err) != KindRateLimited || srv.Served() != 1 {
		t.Fatalf("err = %v after %d requests; want rate limited at once", err, srv.Served())
	}
}

func TestOpenAIRetries5xxAndConnectionReset(t *testing.T) {
	srv := providertest.New(t)
	srv.Script(providertest.Scripted{Status: 503}, providertest.Scripted{Drop: true}, providertest.Scripted{Status: 502})
	p := newTestProvider(t, srv, nil, RetryPolicy{MaxAttempts: 4})
	resp, err := p.Complete(context.Background(), userReq("hi"))
	if err != nil || resp.Content != "reply to: hi" {
		t.Fatalf("Complete = %v, %v; want success on the 4th attempt", resp, err)
	}
	if srv.Served() != 4 {
		t.Fatalf("served %d; want 4", srv.Served())
	}
}

func TestOpenAIUnknownModel(t *testing.T) {
	srv := providertest.New(t)
	srv.Models = []string{"known"}
	p := newTestProvider(t, srv, nil, RetryPolicy{})
	_, err := p.Complete(context.Background(), userReq("hi"))
	if KindOf(err) != KindUnknownModel || srv.Served() != 1 {
		t.Fatalf("err = %v; want unknown model, not retried", err)
	}
}

func TestOpenAITimeout(t *testing.T) {
	srv := providertest.New(t)
	srv.Hold = func(ctx context.Context, _ *providertest.Request) { <-ctx.Done() }
	p := newTestProvider(t, srv, func(pc *Config) { pc.Timeout = 100 * time.Millisecond }, RetryPolicy{})
	_, err := p.Complete(context.Background(), userReq("hi"))
	if KindOf(err) != KindTimeout || srv.Served() != 1 {
		t.Fatalf("err = %v; want timeout, not retried", err)
	}
}

func TestOpenAICallerCancelPropagates(t *testing.T) {
	srv := providertest.New(t)
	srv.Hold = func(ctx context.Context, _ *providertest.Request) { <-ctx.Done() }
	p := newTestProvider(t, srv, nil, RetryPolicy{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for srv.InFlight() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := p.Complete(ctx, userReq("hi"))
	if !errors.Is(err, context.Canceled) || KindOf(err) != "" {
		t.Fatalf("err = %v; want context.Canceled", err)
	}
}

func TestOpenAIStream(t *testing.T) {
	srv := providertest.New(t)
	srv.Reply = func(*providertest.Request) string { return "one two three" }
	p := newTestProvider(t, srv, nil, RetryPolicy{})
	st, err := p.Stream(context.Background(), userReq("hi"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var got strings.Builder
	var chunks int
	var finish string
	for {
		c, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		chunks++
		got.WriteString(c.Delta)
		if c.FinishReason != "" {
			finish = c.FinishReason
		}
	}
	if got.String() != "one two three" || chunks < 3 || finish != "stop" {
		t.Fatalf("streamed %q in %d chunks, finish %q", got.String(), chunks, finish)
	}
	if !srv.LastRequest().Stream {
		t.Fatal("request did not ask for a stream")
	}
}

func TestOpenAIStreamRetriesBeforeFirstByte(t *testing.T) {
	srv := providertest.New(t)
	srv.Script(providertest.Scripted{Status: 500})
	p := newTestProvider(t, srv, nil, RetryPolicy{})
	st, err := p.Stream(context.Background(), userReq("x"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.Recv()
	st.Close()
	if err != nil || c.Delta != "reply " {
		t.Fatalf("Recv = %+v, %v", c, err)
	}
}

func TestOpenAIConnectionsBoundedByMaxConnections(t *testing.T) {
	srv := providertest.New(t)
	release := make(chan struct{})
	srv.Hold = func(ctx context.Context, _ *providertest.Request) {
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	p := newTestProvider(t, srv, func(pc *Config) { pc.MaxConnections = 4 }, RetryPolicy{})
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			_, err := p.Complete(context.Background(), userReq(strings.Repeat("x", i)))
			errs <- err
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.InFlight() < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if peak := srv.PeakConns(); peak > 4 {
		t.Fatalf("peak open connections %d; max_connections is 4", peak)
	}
}

func TestOpenAICloseCancelsInFlightAndDropsConnections(t *testing.T) {
	srv := providertest.New(t)
	srv.Hold = func(ctx context.Context, _ *providertest.Request) { <-ctx.Done() }
	p := newTestProvider(t, srv, nil, RetryPolicy{})
	errc := make(chan error, 3)
	for range 3 {
		go func() { _, err := p.Complete(context.Background(), userReq("hi")); errc <- err }()
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.InFlight() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	p.Close()
	for range 3 {
		if err := <-errc; KindOf(err) != KindClosed {
			t.Fatalf("in-flight request ended with %v; want KindClosed", err)
		}
	}
	if n := srv.WaitOpenConns(0, 5*time.Second); n != 0 {
		t.Fatalf("%d connections open after Close", n)
	}
	if _, err := p.Complete(context.Background(), userReq("late")); KindOf(err) != KindClosed {
		t.Fatalf("Complete after Close = %v; want KindClosed", err)
	}
}

func TestClientCloseCancelsItsRequestsOnly(t *testing.T) {
	srv := providertest.New(t)
	srv.Hold = func(ctx context.Context, r *providertest.Request) {
		if r.LastUser() == "slow" {
			<-ctx.Done()
		}
	}
	p := newTestProvider(t, srv, nil, RetryPolicy{})
	a, b := NewClient(p), NewClient(p)
	defer b.Close()
	errc := make(chan error, 1)
	go func() { _, err := a.Complete(context.Background(), userReq("slow")); errc <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for srv.InFlight() < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	a.Close()
	if err := <-errc; KindOf(err) != KindClosed {
		t.Fatalf("cancelled request = %v; want KindClosed", err)
	}
	if _, err := b.Complete(context.Background(), userReq("fast")); err != nil {
		t.Fatalf("other client broken by a's close: %v", err)
	}
	if _, err := a.Complete(context.Background(), userReq("fast")); KindOf(err) != KindClosed {
		t.Fatalf("closed client accepted a request: %v", err)
	}
}

func TestEcho(t *testing.T) {
	p, err := New(Config{Name: "echo", Type: "echo"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.Complete(context.Background(), userReq("hello"))
	if err != nil || resp.Content != "echo: hello" {
		t.Fatalf("echo = %+v, %v", resp, err)
	}
	p.Close()
	if _, err := p.Complete(context.Background(), userReq("x")); KindOf(err) != KindClosed {
		t.Fatalf("echo after Close = %v", err)
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{"2": 2 * time.Second, "0.5": 500 * time.Millisecond,
		now.Add(3 * time.Second).Format(time.RFC1123): 3 * time.Second} {
		if d, ok := retryAfter(v, now); !ok || d != want {
			t.Errorf("retryAfter(%q) = %v, %v; want %v", v, d, ok, want)
		}
	}
	if _, ok := retryAfter("soon", now); ok {
		t.Error("retryAfter(\"soon\") parsed")
	}
}
