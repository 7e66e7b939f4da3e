package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/plughost/gateway/shared"
)

// waiter is one request waiting for its reply. The host completes it with
// Send (a whole reply) or with streamed parts (SendPart). Text streamed in
// is collected here and taken by the request's handler whenever it is
// ready to write, so the host's sender never waits for a slow client and no
// text is dropped: deltas that arrive while the handler is writing go out
// together in the next event.
type waiter struct {
	stream bool // the client asked for server-sent events
	notify chan struct{}

	mu     sync.Mutex
	delta  strings.Builder
	final  *shared.Reply
	failed bool // the reply ended early or is an error
}

func newWaiter(stream bool) *waiter {
	return &waiter{stream: stream, notify: make(chan struct{}, 1)}
}

func (w *waiter) signal() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// add collects streamed text; a request that did not ask to stream ignores it.
func (w *waiter) add(text string) {
	if !w.stream {
		return
	}
	w.mu.Lock()
	w.delta.WriteString(text)
	w.mu.Unlock()
	w.signal()
}

// finish sets the final reply; failed says it is an error or ended early.
func (w *waiter) finish(r shared.Reply, failed bool) {
	w.mu.Lock()
	if w.final == nil {
		w.final, w.failed = &r, failed
	}
	w.mu.Unlock()
	w.signal()
}

// take returns the text collected since the last take and the final reply,
// if it came.
func (w *waiter) take() (delta string, final *shared.Reply, failed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := w.delta.String()
	w.delta.Reset()
	return d, w.final, w.failed
}

// Streams implements shared.Streamer: the HTTP platform always takes
// streamed replies and streams them to the clients that ask for it.
func (a *adapter) Streams() bool { return true }

// SendPart implements shared.Streamer.
func (a *adapter) SendPart(_ context.Context, p shared.ReplyPart) ([]string, error) {
	switch p.Phase {
	case shared.PhaseStart:
		return nil, nil
	case shared.PhaseDelta:
		a.mu.Lock()
		w, ok := a.pending[p.Reply.ReplyToID]
		a.mu.Unlock()
		if ok {
			w.add(p.Reply.Text)
		}
		return nil, nil
	default:
		return a.complete(p.Reply, p.Phase == shared.PhaseFail)
	}
}

// sse writes server-sent events.
type sse struct {
	w http.ResponseWriter
	f http.Flusher
}

func startSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	s := &sse{w: w, f: f}
	s.flush()
	return s
}

func (s *sse) flush() {
	if s.f != nil {
		s.f.Flush()
	}
}

// event writes one event whose data is v as JSON.
func (s *sse) event(name string, v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", name, b)
	s.flush()
}

// final writes the event that ends the stream.
func (s *sse) final(session string, rep shared.Reply, failed bool) {
	if failed {
		s.event("error", map[string]string{"error": rep.Text})
		return
	}
	s.event("reply", messageResponse{Session: session, Reply: rep.Text})
}

// streamReply answers a request that asked for "stream": true: deltas as
// they come, then the reply or an error, as server-sent events.
func (a *adapter) streamReply(w http.ResponseWriter, r *http.Request, session, id string, wt *waiter, link *hostLink, expire <-chan time.Time) {
	out := startSSE(w)
	for {
		select {
		case <-wt.notify:
			delta, final, failed := wt.take()
			if delta != "" {
				out.event("delta", map[string]string{"text": delta})
			}
			if final != nil {
				out.final(session, *final, failed)
				return
			}
		case <-expire:
			a.forget(id)
			out.event("error", map[string]string{"error": "no reply within " + a.timeout.String()})
			return
		case <-r.Context().Done():
			a.forget(id)
			return
		case <-link.done:
			a.forget(id)
			if delta, final, failed := wt.take(); final != nil {
				if delta != "" {
					out.event("delta", map[string]string{"text": delta})
				}
				out.final(session, *final, failed) // it came just in time
				return
			}
			out.event("error", map[string]string{"error": "the gateway host disconnected before it replied"})
			return
		}
	}
}
