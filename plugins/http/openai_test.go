package main

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/plughost/gateway/shared"
)

// The OpenAI-compatible API, checked with the official Go client.

// oaClient is the official client pointed at the plugin.
func oaClient(h *harness, opts ...option.RequestOption) *openai.Client {
	c := openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL("http://" + h.addr + "/v1/"), option.WithAPIKey("unused"),
		option.WithMaxRetries(0), option.WithHTTPClient(h.http),
	}, opts...)...)
	return &c
}

// answer waits for the next message and replies to it with text.
func (h *harness) answer(kind shared.ReplyKind, text string) *shared.Message {
	h.t.Helper()
	m := h.nextMessage()
	if _, err := h.client.Send(context.Background(), shared.Reply{ConversationID: m.ConversationID, ReplyToID: m.ID, Text: text, Kind: kind}); err != nil {
		h.t.Fatalf("Send: %v", err)
	}
	return m
}

type completion struct {
	res *openai.ChatCompletion
	err error
}

func complete(c *openai.Client, params openai.ChatCompletionNewParams, opts ...option.RequestOption) <-chan completion {
	out := make(chan completion, 1)
	go func() {
		res, err := c.Chat.Completions.New(context.Background(), params, opts...)
		out <- completion{res, err}
	}()
	return out
}

func awaitCompletion(t *testing.T, ch <-chan completion) completion {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-timeAfterWait():
		t.Fatal("no completion")
		return completion{}
	}
}

func TestOpenAICompletionWithSession(t *testing.T) {
	h := start(t, nil)
	c := oaClient(h)
	// The session comes from the user field...
	pending := complete(c, openai.ChatCompletionNewParams{
		Model: "gateway",
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage("ignored: the session keeps the history"),
			openai.UserMessage("hello"),
		},
		User: openai.String("alice"),
	})
	m := h.answer(shared.KindReply, "hi alice")
	if m.ConversationID != "alice" || m.Text != "hello" {
		t.Errorf("message = %+v, want alice's last user message", m)
	}
	got := awaitCompletion(t, pending)
	if got.err != nil {
		t.Fatalf("completion: %v", got.err)
	}
	if got.res.Object != "chat.completion" || len(got.res.Choices) != 1 || got.res.Choices[0].Message.Content != "hi alice" ||
		got.res.Choices[0].FinishReason != "stop" || got.res.Model != "gateway" {
		t.Errorf("completion = %+v", got.res)
	}
	// ...and X-Session-Id wins over it; commands work as in chat.
	pending = complete(c, openai.ChatCompletionNewParams{
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("/new")},
		User:     openai.String("alice"),
	}, option.WithHeader("X-Session-Id", "bob"))
	if m := h.answer(shared.KindNotice, "New conversation."); m.ConversationID != "bob" || m.Text != "/new" {
		t.Errorf("message = %+v, want bob's /new", m)
	}
	if got := awaitCompletion(t, pending); got.err != nil || got.res.Choices[0].Message.Content != "New conversation." {
		t.Errorf("notice: %+v %v", got.res, got.err)
	}
}

func TestOpenAIStreamingGivesChunksAndDone(t *testing.T) {
	h := start(t, nil)
	c := oaClient(h)
	type result struct {
		text string
		n    int
		err  error
	}
	out := make(chan result, 1)
	go func() {
		s := c.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream please")},
			User:     openai.String("carol"),
		})
		var acc openai.ChatCompletionAccumulator
		n := 0
		for s.Next() {
			acc.AddChunk(s.Current())
			if s.Current().Object != "chat.completion.chunk" {
				out <- result{err: errors.New("object " + string(s.Current().Object))}
				return
			}
			n++
		}
		text := ""
		if len(acc.Choices) > 0 {
			text = acc.Choices[0].Message.Content
		}
		out <- result{text, n, s.Err()}
	}()
	h.answer(shared.KindReply, "streamed ```go\nfmt.Println()\n```")
	select {
	case r := <-out:
		if r.err != nil || r.text != "streamed ```go\nfmt.Println()\n```" || r.n < 2 {
			t.Errorf("stream: text %q, %d chunks, err %v", r.text, r.n, r.err)
		}
	case <-timeAfterWait():
		t.Fatal("stream did not end")
	}
}

func TestOpenAIErrors(t *testing.T) {
	h := start(t, map[string]any{"auth_token": "s3cret"})
	params := openai.ChatCompletionNewParams{Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}, User: openai.String("alice")}
	var apiErr *openai.Error

	// No or wrong key: 401 on every /v1/ path.
	_, err := oaClient(h, option.WithAPIKey("wrong")).Chat.Completions.New(context.Background(), params)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || apiErr.Code != "invalid_api_key" || apiErr.Message == "" {
		t.Errorf("wrong key: %v, want 401 invalid_api_key", err)
	}
	if _, err := oaClient(h).Models.List(context.Background()); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		t.Errorf("models without the key: %v, want 401", err)
	}

	c := oaClient(h, option.WithAPIKey("s3cret"))
	// A model that is neither listed nor PROVIDER/MODEL: 404
	// model_not_found, before anything reaches the host.
	p := params
	p.Model = "nosuch"
	if _, err := c.Chat.Completions.New(context.Background(), p); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" {
		t.Errorf("unknown model: %v, want 404 model_not_found", err)
	}
	// PROVIDER/MODEL goes to the host, which answers one it does not know
	// with the code model_not_found: 404 too.
	p.Model = "nosuch/model"
	pending := complete(c, p)
	m := h.nextMessage()
	if m.Model != "nosuch/model" {
		t.Errorf("message model = %q", m.Model)
	}
	if _, err := h.client.Send(context.Background(), shared.Reply{ReplyToID: m.ID, Text: "no provider nosuch", Kind: shared.KindError,
		Code: shared.CodeModelNotFound}); err != nil {
		t.Fatal(err)
	}
	if got := awaitCompletion(t, pending); !errors.As(got.err, &apiErr) || apiErr.StatusCode != http.StatusNotFound ||
		apiErr.Code != "model_not_found" || apiErr.Message != "no provider nosuch" {
		t.Errorf("unknown provider: %v, want 404 model_not_found", got.err)
	}
	if _, err := c.Models.Get(context.Background(), "nosuch"); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" {
		t.Errorf("GET unknown model: %v, want 404 model_not_found", err)
	}
	// The models the API lists.
	page, err := c.Models.List(context.Background())
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != "gateway" {
		t.Fatalf("models = %+v, %v", page, err)
	}
	if m, err := c.Models.Get(context.Background(), "gateway"); err != nil || m.ID != "gateway" {
		t.Errorf("GET gateway = %+v, %v", m, err)
	}
	// Not a user message last: 400.
	p = params
	p.Messages = []openai.ChatCompletionMessageParamUnion{openai.AssistantMessage("hi")}
	if _, err := c.Chat.Completions.New(context.Background(), p); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Type != "invalid_request_error" {
		t.Errorf("assistant last: %v, want 400", err)
	}
	// A busy session: 429; a failed turn: 502.
	pending = complete(c, params)
	h.answer(shared.KindBusy, "busy")
	if got := awaitCompletion(t, pending); !errors.As(got.err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests {
		t.Errorf("busy: %v, want 429", got.err)
	}
	pending = complete(c, params)
	h.answer(shared.KindError, "the provider failed")
	if got := awaitCompletion(t, pending); !errors.As(got.err, &apiErr) || apiErr.StatusCode != http.StatusBadGateway || apiErr.Message != "the provider failed" {
		t.Errorf("error: %v, want 502", got.err)
	}
}

func TestOpenAIStatelessRequestCarriesItsHistory(t *testing.T) {
	h := start(t, nil)
	c := oaClient(h)
	pending := complete(c, openai.ChatCompletionNewParams{
		Model: "openai/gpt-test",
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage("be terse"),
			openai.DeveloperMessage("no markdown"),
			openai.UserMessage("a"),
			openai.AssistantMessage("b"),
			openai.UserMessage("/new c"),
		},
	})
	m := h.answer(shared.KindReply, "d")
	want := []shared.HistoryMessage{{Role: "system", Text: "be terse"}, {Role: "system", Text: "no markdown"},
		{Role: "user", Text: "a"}, {Role: "assistant", Text: "b"}}
	if m.Stateless == nil || !reflect.DeepEqual(m.Stateless.History, want) || m.Text != "/new c" || m.Model != "openai/gpt-test" {
		t.Errorf("message = %+v (stateless %+v)", m, m.Stateless)
	}
	if got := awaitCompletion(t, pending); got.err != nil || got.res.Choices[0].Message.Content != "d" || got.res.Model != "openai/gpt-test" {
		t.Errorf("completion = %+v, %v", got.res, got.err)
	}
	// A role the conversation cannot carry: 400 naming it.
	_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Messages: []openai.ChatCompletionMessageParamUnion{openai.ToolMessage("42", "call-1"), openai.UserMessage("x")},
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || !strings.Contains(apiErr.Message, `role "tool"`) {
		t.Errorf("tool message: %v, want 400 naming the role", err)
	}
}
