package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// streamProvider is an OpenAI-compatible server that streams every reply
// as a first chunk, a pause, then the rest, and records when it flushed
// each request's first chunk.
type streamProvider struct {
	srv   *http.Server
	url   string
	mu    sync.Mutex
	first map[string]time.Time // last user message → first chunk flushed
}

func startStreamProvider() (*streamProvider, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &streamProvider{url: "http://" + ln.Addr().String() + "/v1", first: map[string]time.Time{}}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.handle), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *streamProvider) close() { _ = p.srv.Close() }

func (p *streamProvider) handle(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model    string `json:"model"`
		Stream   bool   `json:"stream"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) == 0 {
		http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
		return
	}
	last := req.Messages[len(req.Messages)-1].Content
	fl, _ := w.(http.Flusher)
	chunk := func(content, finish string) {
		delta := map[string]any{}
		if content != "" {
			delta["content"] = content
		}
		var fin any
		if finish != "" {
			fin = finish
		}
		b, _ := json.Marshal(map[string]any{"id": "bench", "object": "chat.completion.chunk", "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": fin}}})
		fmt.Fprintf(w, "data: %s\n\n", b)
		fl.Flush()
	}
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "bench", "object": "chat.completion", "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": "first rest"}}}})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	// The clock starts as the first token is written: the client may read
	// it before a time taken after the flush would be recorded.
	p.mu.Lock()
	p.first[last] = time.Now()
	p.mu.Unlock()
	chunk("first ", "")
	time.Sleep(20 * time.Millisecond)
	chunk("rest", "")
	chunk("", "stop")
	fmt.Fprint(w, "data: [DONE]\n\n")
	fl.Flush()
}

func (p *streamProvider) firstAt(id string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.first[id]
	return t, ok
}

// firstDelta posts body to url and returns when the first line carrying
// streamed text arrived (prefix marks it), reading the rest to the end.
func firstDelta(c *http.Client, url, body, prefix string) (time.Time, error) {
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return time.Time{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return time.Time{}, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	rd := bufio.NewReader(resp.Body)
	var at time.Time
	for {
		line, err := rd.ReadString('\n')
		if at.IsZero() && strings.HasPrefix(line, prefix) {
			at = time.Now()
		}
		if err != nil {
			break
		}
	}
	if at.IsZero() {
		return at, fmt.Errorf("no %q line in the answer", prefix)
	}
	return at, nil
}

// firstByte: the first streamed text at the HTTP client after the
// provider flushed its first token, through the gateway, against the same
// client reading the provider directly.
func (r *runner) firstByte() error {
	prov, err := startStreamProvider()
	if err != nil {
		return err
	}
	defer prov.close()
	in, err := newInstall(installOpts{platforms: 1, providerURL: prov.url})
	if err != nil {
		return err
	}
	h, err := in.startReady(20 * time.Second)
	if err != nil {
		return err
	}
	defer h.stop(10 * time.Second)
	c := newLoadClient(4, 10*time.Second)
	defer c.CloseIdleConnections()
	n := r.runs(60)
	var gw, direct sample
	var errs int
	for i := range n + 5 {
		id := fmt.Sprintf("fb-%d", i)
		at, err := firstDelta(c, in.url(0), fmt.Sprintf(`{"session":"fb%d","text":%q,"stream":true}`, i%8, id), "event: delta")
		sent, ok := prov.firstAt(id)
		if err != nil || !ok {
			errs++
			continue
		}
		did := "direct-" + id
		dat, derr := firstDelta(c, prov.url+"/chat/completions", fmt.Sprintf(`{"model":"bench","stream":true,"messages":[{"role":"user","content":%q}]}`, did), "data: ")
		dsent, dok := prov.firstAt(did)
		if i < 5 {
			continue // warm-up
		}
		gw = append(gw, ms(at.Sub(sent)))
		if derr == nil && dok {
			direct = append(direct, ms(dat.Sub(dsent)))
		}
	}
	r.t.add(row{
		Figure: "first streamed byte",
		How: fmt.Sprintf("POST /v1/messages {\"stream\": true} through the HTTP plugin to an OpenAI-compatible server streaming a first token, 20 ms, then the rest; "+
			"time from the provider flushing its first token to the client reading the first `event: delta` line; %d requests one at a time; "+
			"baseline: the same client reading the provider's first chunk directly; errors %d", n, errs),
		Result:   gw.format(fmtMs) + fmt.Sprintf(" (max %s)", fmtMs(gw.max())),
		Baseline: direct.format(fmtMs),
		Goal:     fmt.Sprintf("added %s; goal ≤ 5 ms", fmtMs(gw.median()-direct.median())),
		Verdict:  judge(gw.median()-direct.median() <= 5 && errs == 0),
	})
	return nil
}
