package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/shared/kit"
)

// RetryPolicy bounds the retries on 429, 5xx and connection failures.
type RetryPolicy struct {
	// MaxAttempts counts the first request; 1 disables retries. Default 4.
	MaxAttempts int
	// BaseDelay is the first backoff; it doubles per attempt. Default 250ms.
	BaseDelay time.Duration
	// MaxDelay caps the computed backoff. Default 8s.
	MaxDelay time.Duration
	// MaxRetryAfter is the longest Retry-After honoured; a provider asking
	// for longer fails at once as rate limited. Default 30s.
	MaxRetryAfter time.Duration
}

func (r RetryPolicy) withDefaults() RetryPolicy {
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 4
	}
	if r.BaseDelay <= 0 {
		r.BaseDelay = 250 * time.Millisecond
	}
	if r.MaxDelay <= 0 {
		r.MaxDelay = 8 * time.Second
	}
	if r.MaxRetryAfter <= 0 {
		r.MaxRetryAfter = 30 * time.Second
	}
	return r
}

// Options tunes an OpenAI provider beyond its config block.
type Options struct {
	Retry  RetryPolicy
	Logger hclog.Logger
}

// OpenAI is a client for any OpenAI-compatible chat completions API
// (OpenAI, OpenRouter, Ollama, vLLM, llama.cpp server). One OpenAI value owns
// one http.Transport shared by all agents using the provider; see the package
// documentation for why.
type OpenAI struct {
	name     string
	baseURL  string
	endpoint string
	apiKey   string // sensitive: never logged, redacted from provider messages
	headers  map[string]string
	// timeout bounds an answer from the moment the request has a
	// connection: waiting for one of max_connections is not counted (the
	// turn's deadline bounds that wait).
	timeout time.Duration
	// streamIdle bounds the pause between two pieces of a streamed reply.
	streamIdle time.Duration
	retry      RetryPolicy
	log        hclog.Logger

	transport *http.Transport
	http      *http.Client
	pool      poolWaits

	ctx    context.Context // cancelled by Close: cancels every request in flight
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

var _ Provider = (*OpenAI)(nil)

// NewOpenAI builds an OpenAI-compatible provider; opts may be nil.
func NewOpenAI(p Config, opts *Options) (*OpenAI, error) {
	if opts == nil {
		opts = &Options{}
	}
	if p.BaseURL == "" {
		return nil, fmt.Errorf("provider %q: base_url is required for type \"openai\"", p.Name)
	}
	if !strings.HasPrefix(p.BaseURL, "http://") && !strings.HasPrefix(p.BaseURL, "https://") {
		return nil, fmt.Errorf("provider %q: base_url %q must start with http:// or https://", p.Name, RedactURL(p.BaseURL))
	}
	maxConns := p.MaxConnections
	if maxConns <= 0 {
		maxConns = DefaultMaxConnections
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	streamIdle := p.StreamIdleTimeout
	if streamIdle <= 0 {
		streamIdle = timeout
	}
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxConnsPerHost:       maxConns, // the bound on open connections, dialing included
		MaxIdleConns:          maxConns,
		MaxIdleConnsPerHost:   maxConns, // keep what we may open: no churn under load
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	headers := make(map[string]string, len(p.Headers))
	for k, v := range p.Headers {
		headers[k] = v
	}
	return &OpenAI{
		name:       p.Name,
		baseURL:    RedactURL(p.BaseURL), // only ever printed
		endpoint:   strings.TrimRight(p.BaseURL, "/") + "/chat/completions",
		apiKey:     p.APIKey,
		headers:    headers,
		timeout:    timeout,
		streamIdle: streamIdle,
		retry:      opts.Retry.withDefaults(),
		log:        log.Named(p.Name),
		transport:  t,
		http:       &http.Client{Transport: t, CheckRedirect: refuseRedirects},
		ctx:        ctx,
		cancel:     cancel,
	}, nil
}

// Name returns the provider's configured name.
func (o *OpenAI) Name() string { return o.name }

// PoolStats returns how many requests wait for a pooled connection and how
// long the served ones waited.
func (o *OpenAI) PoolStats() PoolStats { return o.pool.stats() }

// Close cancels every request in flight, waits for them, and closes the idle
// connections: afterwards the provider holds no connection open.
func (o *OpenAI) Close() error {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	o.cancel()
	o.wg.Wait()
	o.transport.CloseIdleConnections()
	return nil
}

func (o *OpenAI) begin() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return &Error{Provider: o.name, Kind: KindClosed, Message: "provider closed"}
	}
	o.wg.Add(1)
	return nil
}

type chatRequest struct {
	Model         string         `json:"model"`
	Messages      []Message      `json:"messages"`
	Stream        bool           `json:"stream,omitempty"`
	StreamOptions *streamOptions `json:"stream_options,omitempty"`
	Tools         []chatTool     `json:"tools,omitempty"`
	ToolChoice    string         `json:"tool_choice,omitempty"`
}

// streamOptions asks for the usage of a streamed reply, sent as a last
// chunk with no choices.
type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatResponse struct {
	Model   string `json:"model"`
	Choices []struct {
		Message      Message `json:"message"`
		Delta        Message `json:"delta"`
		FinishReason string  `json:"finish_reason"`
	} `json:"choices"`
	Usage *Usage `json:"usage"`
}

type apiError struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    any    `json:"code"`
	} `json:"error"`
}

// Complete sends req and waits for the whole reply, retrying 429, 5xx and
// connection failures with capped backoff that honours Retry-After.
func (o *OpenAI) Complete(ctx context.Context, req *Request) (*Response, error) {
	if req.Tools != nil {
		return completeWithTools(ctx, req, o.complete)
	}
	return o.complete(ctx, req)
}

// complete is one request of Complete.
func (o *OpenAI) complete(ctx context.Context, req *Request) (*Response, error) {
	if err := o.begin(); err != nil {
		return nil, err
	}
	defer o.wg.Done()
	var out *Response
	err := o.do(ctx, req, false, func(resp *http.Response, _ func()) error {
		raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes+1))
		if err != nil {
			return fmt.Errorf("read reply: %w", err)
		}
		if len(raw) > MaxBodyBytes {
			return &Error{Provider: o.name, Kind: KindBadResponse, Status: resp.StatusCode,
				Message: fmt.Sprintf("the reply is over %d MiB: lower the model's output limit, or check that base_url %s is a chat completions API", MaxBodyBytes>>20, o.baseURL)}
		}
		var cr chatResponse
		if err := json.Unmarshal(raw, &cr); err != nil {
			return &Error{Provider: o.name, Kind: KindBadResponse, Status: resp.StatusCode, Message: "the reply is not chat completions JSON", Err: err}
		}
		if len(cr.Choices) == 0 {
			return &Error{Provider: o.name, Kind: KindBadResponse, Status: resp.StatusCode, Message: "the reply has no choices"}
		}
		out = &Response{Content: cr.Choices[0].Message.Content, Model: cr.Model, FinishReason: cr.Choices[0].FinishReason,
			ToolCalls: cr.Choices[0].Message.ToolCalls}
		if cr.Usage != nil {
			out.Usage = *cr.Usage
		}
		return nil
	})
	return out, err
}

// Stream sends req with "stream": true and returns the server-sent events as
// they arrive. Retries happen only before the first byte of the reply.
func (o *OpenAI) Stream(ctx context.Context, req *Request) (Stream, error) {
	if err := o.begin(); err != nil {
		return nil, err
	}
	var st *sseStream
	err := o.do(ctx, req, true, func(resp *http.Response, release func()) error {
		st = newSSEStream(o.name, resp, release)
		return errKeepBody
	})
	if err == nil {
		st.idle = o.streamIdle
	}
	if err != nil {
		o.wg.Done()
		return nil, err
	}
	// Closing the provider ends the stream even if its reader forgot to.
	stop := context.AfterFunc(o.ctx, func() { _ = st.Close() })
	st.onClose = func() { stop(); o.wg.Done() }
	return st, nil
}

// errKeepBody tells do that the body now belongs to a stream.
var errKeepBody = errors.New("keep body")

// do runs the request loop. handle reads a 200 reply; it returns errKeepBody
// to take ownership of the body (and of the attempt's context).
func (o *OpenAI) do(ctx context.Context, req *Request, stream bool, handle func(resp *http.Response, release func()) error) error {
	cr := chatRequest{Model: req.Model, Messages: req.Messages, Stream: stream, Tools: req.offered, ToolChoice: req.toolChoice}
	if stream {
		cr.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	body, err := json.Marshal(cr)
	if err != nil {
		return fmt.Errorf("provider %q: encode request: %w", o.name, err)
	}
	for attempt := 1; ; attempt++ {
		wait, err := o.attempt(ctx, body, stream, attempt, handle)
		if err == nil {
			return nil
		}
		var pe *Error
		if !errors.As(err, &pe) || wait < 0 || attempt >= o.retry.MaxAttempts {
			return err
		}
		if wait == 0 {
			wait = kit.Backoff{Initial: o.retry.BaseDelay, Max: o.retry.MaxDelay}.Delay(attempt)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return err // the caller's deadline would pass while waiting
		}
		o.log.Debug("retrying", "kind", pe.Kind, "status", pe.Status, "attempt", attempt, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-o.ctx.Done():
			t.Stop()
			return &Error{Provider: o.name, Kind: KindClosed, Message: "provider closed", Attempts: attempt, Err: err}
		}
	}
}

// attempt makes one request. On failure it returns how long to wait before
// retrying: -1 for "do not retry", 0 for "use the backoff". The timeout
// starts once the request has a connection: with every one of
// max_connections busy, the request waits for a free one bounded only by
// ctx (the turn's deadline), and an answer that arrives in time is used.
func (o *OpenAI) attempt(ctx context.Context, body []byte, stream bool, n int, handle func(resp *http.Response, release func()) error) (time.Duration, error) {
	actx, cancel := context.WithCancel(ctx)
	stopProviderCancel := context.AfterFunc(o.ctx, cancel)
	var timedOut atomic.Bool
	timer := &answerTimer{d: o.timeout, fire: func() { timedOut.Store(true); cancel() }}
	wait := o.pool.begin()
	release := func() { wait.done(false); timer.stop(); stopProviderCancel(); cancel() }
	kept := false
	defer func() {
		if !kept {
			release()
		}
	}()
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) {
		wait.done(true)
		timer.start()
	}})

	hreq, err := http.NewRequestWithContext(actx, http.MethodPost, o.endpoint, bytes.NewReader(body))
	if err != nil {
		return -1, fmt.Errorf("provider %q: build request: %w", o.name, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if stream {
		hreq.Header.Set("Accept", "text/event-stream")
	}
	for k, v := range o.headers {
		hreq.Header.Set(k, v)
	}
	if o.apiKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+o.apiKey)
	}

	// failed classifies a transport or body error.
	failed := func(err error) (time.Duration, error) {
		switch {
		case ctx.Err() != nil:
			return -1, ctx.Err()
		case o.ctx.Err() != nil:
			return -1, &Error{Provider: o.name, Kind: KindClosed, Message: "provider closed", Attempts: n, Err: err}
		case timedOut.Load():
			return -1, &Error{Provider: o.name, Kind: KindTimeout, Attempts: n,
				Message: fmt.Sprintf("no answer within %s (timeout)", o.timeout), Err: err}
		}
		if msg := permanentTransportError(err, o.baseURL); msg != "" {
			return -1, &Error{Provider: o.name, Kind: KindMisconfigured, Attempts: n, Message: msg, Err: err}
		}
		if retryableNetErr(err) {
			return 0, &Error{Provider: o.name, Kind: KindUnavailable, Attempts: n, Message: "connection failed", Err: err}
		}
		return -1, &Error{Provider: o.name, Kind: KindBadResponse, Attempts: n, Err: err}
	}

	resp, err := o.http.Do(hreq)
	if err != nil {
		return failed(redactURLError(err))
	}
	if resp.StatusCode == http.StatusOK {
		if stream {
			timer.stop() // the timeout bounds the wait for the first byte; stream_idle_timeout the rest
		}
		err := handle(resp, release)
		if err == errKeepBody {
			kept = true
			return 0, nil
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if err != nil {
			var pe *Error
			if errors.As(err, &pe) {
				pe.Attempts = n
				return -1, pe
			}
			return failed(err)
		}
		return 0, nil
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		// 304 and the like: CheckRedirect did not see them.
		resp.Body.Close()
		return -1, &Error{Provider: o.name, Kind: KindMisconfigured, Status: resp.StatusCode, Attempts: n,
			Message: (&RedirectError{Status: resp.StatusCode, From: o.endpoint, To: resp.Header.Get("Location")}).Error()}
	}

	msg := o.errorMessage(resp)
	resp.Body.Close()
	e := &Error{Provider: o.name, Status: resp.StatusCode, Message: msg.text, Attempts: n}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		e.Kind = KindAuth
		return -1, e
	case resp.StatusCode == http.StatusNotFound || msg.modelNotFound:
		e.Kind = KindUnknownModel
		return -1, e
	case resp.StatusCode == http.StatusTooManyRequests:
		e.Kind = KindRateLimited
	case resp.StatusCode >= 500:
		e.Kind = KindUnavailable
	default:
		e.Kind = KindBadRequest
		return -1, e
	}
	if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		if d > o.retry.MaxRetryAfter {
			e.Message = strings.TrimSpace(e.Message + fmt.Sprintf(" (asked to retry after %s)", d.Round(time.Second)))
			return -1, e
		}
		if d == 0 {
			d = time.Millisecond
		}
		return d, e
	}
	return 0, e
}

type errorText struct {
	text          string
	modelNotFound bool
}

// errorMessage extracts the provider's explanation, with the API key redacted
// in case a provider echoes it back.
func (o *OpenAI) errorMessage(resp *http.Response) errorText {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var ae apiError
	var out errorText
	if json.Unmarshal(raw, &ae) == nil && ae.Error.Message != "" {
		out.text = ae.Error.Message
		code, _ := ae.Error.Code.(string)
		out.modelNotFound = code == "model_not_found" || ae.Error.Type == "model_not_found"
	} else {
		out.text = strings.TrimSpace(string(raw))
	}
	if len(out.text) > 300 {
		out.text = out.text[:300] + "…"
	}
	if o.apiKey != "" {
		out.text = strings.ReplaceAll(out.text, o.apiKey, "[redacted]")
	}
	return out
}

// answerTimer is an attempt's timeout: armed when the request gets a
// connection, stopped when the answer is in (or the attempt ends).
type answerTimer struct {
	d    time.Duration
	fire func()

	mu      sync.Mutex
	t       *time.Timer
	stopped bool
}

func (a *answerTimer) start() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.t == nil && !a.stopped {
		a.t = time.AfterFunc(a.d, a.fire)
	}
}

func (a *answerTimer) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopped = true
	if a.t != nil {
		a.t.Stop()
	}
}
