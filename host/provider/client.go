package provider

import (
	"context"
	"errors"
	"net/url"
	"sync"
)

// redactURLError removes credentials from the URL a *url.Error prints.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = RedactURL(ue.URL)
	}
	return err
}

// Client is one agent's handle on a shared Provider. It holds no connections
// of its own (they belong to the provider's pool); it tracks the agent's
// requests so that closing the agent cancels them and waits for them, leaving
// nothing behind.
type Client struct {
	p      Provider
	ctx    context.Context // cancelled by Cancel or Close
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // requests and open streams
}

// NewClient returns a client for one agent on p.
func NewClient(p Provider) *Client {
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{p: p, ctx: ctx, cancel: cancel}
}

// Provider returns the provider the client sends to.
func (c *Client) Provider() Provider { return c.p }

func (c *Client) begin() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.ctx.Err() != nil {
		return &Error{Provider: c.p.Name(), Kind: KindClosed, Message: "the agent's client is closed"}
	}
	c.wg.Add(1)
	return nil
}

// scope derives a context cancelled by ctx or by the client's own cancel.
func (c *Client) scope(ctx context.Context) (context.Context, context.CancelFunc) {
	rctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	return rctx, func() { stop(); cancel() }
}

// classify turns a failure caused by the client being cancelled (rather than
// by the caller) into an error of kind KindClosed.
func (c *Client) classify(ctx context.Context, err error) error {
	if err != nil && ctx.Err() == nil && c.ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return &Error{Provider: c.p.Name(), Kind: KindClosed, Message: "the request was cancelled because its agent was closed", Err: err}
	}
	return err
}

// Complete sends req on the shared provider; see Provider.Complete.
func (c *Client) Complete(ctx context.Context, req *Request) (*Response, error) {
	if err := c.begin(); err != nil {
		return nil, err
	}
	defer c.wg.Done()
	rctx, cancel := c.scope(ctx)
	defer cancel()
	resp, err := c.p.Complete(rctx, req)
	return resp, c.classify(ctx, err)
}

// Stream sends req and returns the reply as it is produced; the stream counts
// as in flight until it is closed or the client is cancelled.
func (c *Client) Stream(ctx context.Context, req *Request) (Stream, error) {
	if err := c.begin(); err != nil {
		return nil, err
	}
	rctx, cancel := c.scope(ctx)
	s, err := c.p.Stream(rctx, req)
	if err != nil {
		cancel()
		c.wg.Done()
		return nil, c.classify(ctx, err)
	}
	cs := &clientStream{Stream: s}
	cs.release = func() {
		cs.once.Do(func() {
			cancel()
			c.wg.Done()
		})
	}
	// A caller that forgets Close must not block Client.Close forever.
	cs.stop = context.AfterFunc(rctx, func() { _ = s.Close(); cs.release() })
	return cs, nil
}

type clientStream struct {
	Stream
	once    sync.Once
	release func()
	stop    func() bool
}

func (s *clientStream) Close() error {
	err := s.Stream.Close()
	s.stop()
	s.release()
	return err
}

// Cancel cancels the client's requests in flight without waiting. The client
// refuses new requests afterwards.
func (c *Client) Cancel() { c.cancel() }

// Close cancels the requests in flight, waits until they have returned and
// refuses new ones. It is safe to call more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

// RedactURL returns rawURL fit to print: credentials in it (user info, and
// query values such as ?key=…) are replaced by REDACTED. A URL
// that does not parse is not shown at all.
func RedactURL(rawURL string) string {
	if rawURL == "" {
		return ""
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(a URL that does not parse; not shown, it may hold credentials)"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"REDACTED"}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}
