package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"github.com/plughost/gateway/shared"
)

// v2Plugin is the plugin served over protocol 2, connected; the test plays
// the host.
type v2Plugin struct {
	t      *testing.T
	addr   string
	client *shared.GRPCClientV2
	events chan shared.Event
	oa     *openai.Client
}

func startV2(t *testing.T) *v2Plugin {
	t.Helper()
	addr := freeAddr(t)
	c := shared.TestPlatformV2(t, newAdapter())
	raw, _ := json.Marshal(map[string]any{"listen": addr})
	if err := c.Configure(context.Background(), shared.Config{Raw: raw}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan shared.Event, 16)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, events) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Error("Run did not return")
		}
	})
	oa := openai.NewClient(option.WithBaseURL("http://"+addr+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0),
		option.WithHTTPClient(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}))
	p := &v2Plugin{t: t, addr: addr, client: c, events: events, oa: &oa}
	if ev := p.next(); ev.Health == nil || ev.Health.State != shared.Connected {
		t.Fatalf("first event = %+v", ev)
	}
	return p
}

func (p *v2Plugin) next() shared.Event {
	p.t.Helper()
	select {
	case ev := <-p.events:
		return ev
	case <-time.After(waitTimeout):
		p.t.Fatal("no event from the plugin")
		return shared.Event{}
	}
}

func (p *v2Plugin) part(m *shared.Message, phase shared.ReplyPhase, r shared.Reply) {
	p.t.Helper()
	r.ReplyToID, r.ConversationID = m.ID, m.ConversationID
	if _, err := p.client.SendPart(context.Background(), shared.ReplyPart{ReplyID: "r-" + m.ID, Phase: phase, Reply: r}); err != nil {
		p.t.Fatalf("SendPart %s: %v", phase, err)
	}
}

// chunks streams a completion and hands over each chunk's text as it
// arrives; the stream's error comes on errc when it ends.
func (p *v2Plugin) chunks(params openai.ChatCompletionNewParams) (<-chan openai.ChatCompletionChunk, <-chan error) {
	out := make(chan openai.ChatCompletionChunk, 64)
	errc := make(chan error, 1)
	go func() {
		s := p.oa.Chat.Completions.NewStreaming(context.Background(), params)
		for s.Next() {
			out <- s.Current()
		}
		errc <- s.Err()
		close(out)
	}()
	return out, errc
}

func userMessages(texts ...string) []openai.ChatCompletionMessageParamUnion {
	out := make([]openai.ChatCompletionMessageParamUnion, len(texts))
	for i, s := range texts {
		out[i] = openai.UserMessage(s)
	}
	return out
}

func nextChunk(t *testing.T, ch <-chan openai.ChatCompletionChunk) openai.ChatCompletionChunk {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(waitTimeout):
		t.Fatal("no chunk")
		return openai.ChatCompletionChunk{}
	}
}

// Each streamed part reaches the client as a chunk when it comes, the end
// sends what was not streamed and the usage asked for.
func TestStreamingCompletionRelaysParts(t *testing.T) {
	p := startV2(t)
	chunks, errc := p.chunks(openai.ChatCompletionNewParams{Messages: userMessages("hi"), User: openai.String("ann"),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
	m := p.next().Message
	if m == nil || !m.Stream || m.ConversationID != "ann" {
		t.Fatalf("message = %+v, want a streamed turn of ann", m)
	}
	p.part(m, shared.PhaseStart, shared.Reply{Kind: shared.KindReply})
	p.part(m, shared.PhaseDelta, shared.Reply{Text: "Hel", Kind: shared.KindReply})
	if c := nextChunk(t, chunks); c.Choices[0].Delta.Content != "Hel" || c.Choices[0].Delta.Role != "assistant" || c.Object != "chat.completion.chunk" {
		t.Errorf("first chunk = %+v", c)
	}
	p.part(m, shared.PhaseDelta, shared.Reply{Text: "lo", Kind: shared.KindReply})
	if c := nextChunk(t, chunks); c.Choices[0].Delta.Content != "lo" {
		t.Errorf("second chunk = %+v", c)
	}
	p.part(m, shared.PhaseEnd, shared.Reply{Text: "Hello, world", Kind: shared.KindReply, Usage: &shared.Usage{PromptTokens: 3, CompletionTokens: 2}})
	var text strings.Builder
	var usage openai.CompletionUsage
	finish := ""
	for c := range chunks {
		if len(c.Choices) > 0 {
			text.WriteString(c.Choices[0].Delta.Content)
			finish += c.Choices[0].FinishReason
		}
		if c.Usage.TotalTokens > 0 {
			usage = c.Usage
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if text.String() != ", world" || finish != "stop" || usage.PromptTokens != 3 || usage.CompletionTokens != 2 || usage.TotalTokens != 5 {
		t.Errorf("rest %q, finish %q, usage %+v", text.String(), finish, usage)
	}
}

// A failure before any text answers with its status; after some, it ends
// the stream with an error event the client raises.
func TestStreamingCompletionFailures(t *testing.T) {
	p := startV2(t)
	var apiErr *openai.Error
	_, errc := p.chunks(openai.ChatCompletionNewParams{Messages: userMessages("hi"), Model: "nosuch/model"})
	m := p.next().Message
	p.part(m, shared.PhaseFail, shared.Reply{Text: "no provider nosuch", Kind: shared.KindError, Code: shared.CodeModelNotFound})
	if err := <-errc; !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" {
		t.Errorf("unknown model: %v, want 404 model_not_found", err)
	}

	chunks, errc := p.chunks(openai.ChatCompletionNewParams{Messages: userMessages("hi")})
	m = p.next().Message
	p.part(m, shared.PhaseDelta, shared.Reply{Text: "par", Kind: shared.KindReply})
	nextChunk(t, chunks)
	p.part(m, shared.PhaseFail, shared.Reply{Text: "the provider broke", Kind: shared.KindError})
	var se *ssestream.StreamError
	if err := <-errc; !errors.As(err, &se) || !strings.Contains(se.Message, "the provider broke") {
		t.Errorf("mid-stream failure: %v, want a stream error with the reason", err)
	}
}
