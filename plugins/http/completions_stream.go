package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/plughost/gateway/shared"
)

// Streaming chat completions: the provider's stream, relayed as it
// arrives (protocol 2 streams the reply's parts to the plugin; a host that
// sends the reply whole gives one chunk).

// streamCompletion answers a request with "stream": true. Until the first
// text arrives nothing is written, so a failure before it (busy, unknown
// model, the agent failed, timeout) answers with its status and OpenAI's
// error object; after it, a failure ends the stream with an error event.
func (a *adapter) streamCompletion(w http.ResponseWriter, r *http.Request, msg *shared.Message, model string, includeUsage bool) {
	timer := time.NewTimer(a.timeout)
	defer timer.Stop()
	id, wt, link, err := a.submit(r.Context(), msg, timer.C)
	if err != nil {
		a.writeConverseError(w, err)
		return
	}
	var out *chunkWriter // nil until the first text
	var streamed strings.Builder
	emit := func(delta string) {
		if delta == "" {
			return
		}
		if out == nil {
			out = newChunkWriter(w, "chatcmpl-"+id, model)
		}
		out.delta(delta)
		streamed.WriteString(delta)
	}
	end := func(final shared.Reply, failed bool) {
		if out == nil && writeReplyError(w, final) {
			return
		}
		switch {
		case failed && final.Kind == shared.KindError:
			out.fail("api_error", "upstream_error", final.Text)
			return
		case failed: // ended early ("Stopped."): say so after what came
			if streamed.Len() > 0 {
				emit("\n\n")
			}
			emit(final.Text)
		default:
			// The end carries the whole reply: send what the stream has
			// not (a reply the host did not stream comes whole here).
			if rest, ok := strings.CutPrefix(final.Text, streamed.String()); ok {
				emit(rest)
			}
		}
		if out == nil { // an empty reply
			out = newChunkWriter(w, "chatcmpl-"+id, model)
		}
		out.finish(includeUsage, final.Usage)
	}
	for {
		select {
		case <-wt.notify:
			delta, final, failed := wt.take()
			emit(delta)
			if final != nil {
				end(*final, failed)
				return
			}
		case <-timer.C:
			a.forget(id)
			if out == nil {
				a.writeConverseError(w, errTimeout)
			} else {
				out.fail("timeout", "timeout", "no reply within "+a.timeout.String())
			}
			return
		case <-r.Context().Done():
			a.forget(id)
			return
		case <-link.done:
			a.forget(id)
			delta, final, failed := wt.take()
			emit(delta)
			if final != nil { // it came just in time
				end(*final, failed)
				return
			}
			if out == nil {
				a.writeConverseError(w, errDisconnected)
			} else {
				out.fail("api_error", "unavailable", errDisconnected.Error())
			}
			return
		}
	}
}

// chunkWriter answers a streaming request with server-sent
// chat.completion.chunk objects: the first carries the role, each then a
// piece of text; finish writes the finishing chunk, the usage chunk when
// asked for and known, and data: [DONE].
type chunkWriter struct {
	w       http.ResponseWriter
	f       http.Flusher
	id      string
	model   string
	created int64
	started bool
}

func newChunkWriter(w http.ResponseWriter, id, model string) *chunkWriter {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	return &chunkWriter{w: w, f: f, id: id, model: model, created: time.Now().Unix()}
}

// data writes one event and flushes it to the client.
func (c *chunkWriter) data(v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(c.w, "data: %s\n\n", b)
	if c.f != nil {
		c.f.Flush()
	}
}

func (c *chunkWriter) chunk(choices []map[string]any, usage any) {
	obj := map[string]any{"id": c.id, "object": "chat.completion.chunk", "created": c.created, "model": c.model, "choices": choices}
	if usage != nil {
		obj["usage"] = usage
	}
	c.data(obj)
}

// delta writes a piece of the reply's text.
func (c *chunkWriter) delta(text string) {
	d := map[string]any{"content": text}
	if !c.started {
		c.started = true
		d["role"] = "assistant"
	}
	c.chunk([]map[string]any{{"index": 0, "delta": d, "finish_reason": nil}}, nil)
}

// finish ends the stream.
func (c *chunkWriter) finish(includeUsage bool, u *shared.Usage) {
	c.chunk([]map[string]any{{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"}}, nil)
	if includeUsage && u != nil {
		c.chunk([]map[string]any{}, usageObject(u))
	}
	fmt.Fprint(c.w, "data: [DONE]\n\n")
	if c.f != nil {
		c.f.Flush()
	}
}

// fail ends the stream early with an error event in OpenAI's shape (the
// status is already sent).
func (c *chunkWriter) fail(typ, code, msg string) {
	e := apiError{Message: msg, Type: typ}
	if code != "" {
		e.Code = &code
	}
	c.data(map[string]apiError{"error": e})
}
