package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/plughost/gateway/host/provider/providertest"
)

// The OpenAI-compatible API of the HTTP platform through the real host,
// checked with the official Go client against the fake provider.

// openAIGateway runs the host with the fake provider as the default model
// (openai/test-model), the echo provider beside it, and the HTTP platform
// "web" with auth_token "s3cret". It returns the fake and a client.
func openAIGateway(t *testing.T) (*providertest.Server, *openai.Client, string) {
	t.Helper()
	ai := newFakeOpenAI(t)
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(`provider "echo" { type = "echo" }` + openAIConfig(ai, "sk-test-key", "") +
		httpPlatform("web", web, `auth_token = "s3cret"`))
	e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	c := openai.NewClient(option.WithBaseURL("http://"+web+"/v1/"), option.WithAPIKey("s3cret"),
		option.WithMaxRetries(0), option.WithRequestTimeout(30*time.Second))
	return ai, &c, web
}

func userMessages(texts ...string) []openai.ChatCompletionMessageParamUnion {
	out := make([]openai.ChatCompletionMessageParamUnion, len(texts))
	for i, s := range texts {
		out[i] = openai.UserMessage(s)
	}
	return out
}

// sent lists the role:content of the messages the provider got last.
func sent(ai *providertest.Server) string {
	var got []string
	for _, m := range ai.LastRequest().Messages {
		got = append(got, m.Role+":"+m.Content)
	}
	return strings.Join(got, "|")
}

func TestOpenAIStatefulAndStatelessSessions(t *testing.T) {
	ai, c, _ := openAIGateway(t)
	ctx := context.Background()
	ask := func(params openai.ChatCompletionNewParams, opts ...option.RequestOption) string {
		t.Helper()
		res, err := c.Chat.Completions.New(ctx, params, opts...)
		if err != nil {
			t.Fatalf("completion: %v", err)
		}
		if len(res.Choices) != 1 || res.Object != "chat.completion" {
			t.Fatalf("completion = %+v", res)
		}
		return res.Choices[0].Message.Content
	}

	// Stateful: the user field names the session, which keeps the history;
	// only the last user message is the new turn.
	if got := ask(openai.ChatCompletionNewParams{Messages: userMessages("one"), User: openai.String("alice")}); got != "turns=1 last=one" {
		t.Errorf("first turn = %q", got)
	}
	if got := ask(openai.ChatCompletionNewParams{Messages: userMessages("ignored", "two"), User: openai.String("alice")}); got != "turns=2 last=two" {
		t.Errorf("second turn = %q, want the session's history of one turn", got)
	}
	// X-Session-Id names it too; commands work as in chat.
	if got := ask(openai.ChatCompletionNewParams{Messages: userMessages("/new")}, option.WithHeader("X-Session-Id", "alice")); got != "Started a new session." {
		t.Errorf("/new = %q", got)
	}
	if got := ask(openai.ChatCompletionNewParams{Messages: userMessages("three")}, option.WithHeader("X-Session-Id", "alice")); got != "turns=1 last=three" {
		t.Errorf("after /new = %q", got)
	}

	// Stateless: no session named, the messages are the whole conversation,
	// sent as they are after the agent's system prompt.
	got := ask(openai.ChatCompletionNewParams{Model: "gateway", Messages: []openai.ChatCompletionMessageParamUnion{
		openai.SystemMessage("You are terse."),
		openai.UserMessage("a"),
		openai.AssistantMessage("b"),
		openai.UserMessage("c"),
	}})
	if got != "turns=2 last=c" {
		t.Errorf("stateless = %q", got)
	}
	if want := "system:Be brief.|system:You are terse.|user:a|assistant:b|user:c"; sent(ai) != want {
		t.Errorf("stateless request sent %q, want %q", sent(ai), want)
	}
	// A command is not one there: it is text for the model.
	if got := ask(openai.ChatCompletionNewParams{Messages: userMessages("/new")}); got != "turns=1 last=/new" {
		t.Errorf("stateless /new = %q, want it answered by the model", got)
	}
	// Nothing was stored: alice's session did not see them, and a session
	// named "stateless" (the user they are counted as) is empty.
	if got := ask(openai.ChatCompletionNewParams{Messages: userMessages("four")}, option.WithHeader("X-Session-Id", "alice")); got != "turns=2 last=four" {
		t.Errorf("alice after stateless requests = %q", got)
	}
	if got := ask(openai.ChatCompletionNewParams{Messages: userMessages("first")}, option.WithHeader("X-Session-Id", "stateless")); got != "turns=1 last=first" {
		t.Errorf("session %q = %q, want a fresh session", "stateless", got)
	}

	// Stateless requests do not queue behind each other: two at once, the
	// first held by the provider, both answered (no 429).
	slow := make(chan string, 1)
	go func() {
		res, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Messages: userMessages("slow 1500")})
		if err != nil {
			slow <- err.Error()
			return
		}
		slow <- res.Choices[0].Message.Content
	}()
	eventually(t, 10*time.Second, "the slow request reached the provider", func() bool { return ai.InFlight() == 1 })
	if got := ask(openai.ChatCompletionNewParams{Messages: userMessages("quick")}); got != "turns=1 last=quick" {
		t.Errorf("stateless beside a slow one = %q", got)
	}
	if got := <-slow; got != "turns=1 last=slow 1500" {
		t.Errorf("slow stateless = %q", got)
	}
}

func TestOpenAIModelPerTurn(t *testing.T) {
	ai, c, _ := openAIGateway(t)
	ctx := context.Background()
	ask := func(model, text string) (string, string) {
		t.Helper()
		res, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: model, Messages: userMessages(text)},
			option.WithHeader("X-Session-Id", "bob"))
		if err != nil {
			t.Fatalf("model %q: %v", model, err)
		}
		return res.Choices[0].Message.Content, res.Model
	}
	res, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Messages: userMessages("one")},
		option.WithHeader("X-Session-Id", "bob"))
	if err != nil || res.Choices[0].Message.Content != "turns=1 last=one" {
		t.Fatalf("default model = %+v, %v", res, err)
	}
	// The provider's usage comes with the answer.
	if p, c := providertest.CountWords(ai.LastRequest(), "turns=1 last=one"); res.Usage.PromptTokens != int64(p) || res.Usage.CompletionTokens != int64(c) || res.Usage.TotalTokens != int64(p+c) {
		t.Errorf("usage = %+v, want %d+%d", res.Usage, p, c)
	}
	// PROVIDER/MODEL: that model for this turn, on the session's history...
	if got, model := ask("echo/echo", "two"); got != "echo: two" || model != "echo/echo" {
		t.Errorf("echo/echo = %q (model %q)", got, model)
	}
	if got, _ := ask("openai/other-model", "three"); got != "turns=3 last=three" || ai.LastRequest().Model != "other-model" {
		t.Errorf("openai/other-model = %q, provider got model %q", got, ai.LastRequest().Model)
	}
	// ...and the session keeps its own: the default, with every turn.
	if got, model := ask("gateway", "four"); got != "turns=4 last=four" || ai.LastRequest().Model != "test-model" || model != "gateway" {
		t.Errorf("back to the default = %q (model %q), provider got model %q", got, model, ai.LastRequest().Model)
	}
	if want := "user:two|assistant:echo: two|user:three"; !strings.Contains(sent(ai), want) {
		t.Errorf("history sent %q, want the echo turn in it", sent(ai))
	}
	// Stateless on another model.
	res, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "echo/echo", Messages: userMessages("x", "y")})
	if err != nil || res.Choices[0].Message.Content != "echo: y" {
		t.Errorf("stateless echo/echo = %+v, %v", res, err)
	}
}

func TestOpenAIErrorsThroughTheHost(t *testing.T) {
	ai, c, web := openAIGateway(t)
	ctx := context.Background()
	var apiErr *openai.Error
	params := openai.ChatCompletionNewParams{Messages: userMessages("hi"), User: openai.String("carol")}
	for _, model := range []string{"nosuch/model", "nosuch", "openai"} {
		p := params
		p.Model = model
		_, err := c.Chat.Completions.New(ctx, p)
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" || apiErr.Type != "invalid_request_error" {
			t.Errorf("model %q: %v, want 404 model_not_found", model, err)
		}
	}
	if n := ai.Served(); n != 0 {
		t.Errorf("the provider served %d requests for unknown models", n)
	}
	// The session was not touched: its first turn is still the first.
	if res, err := c.Chat.Completions.New(ctx, params); err != nil || res.Choices[0].Message.Content != "turns=1 last=hi" {
		t.Errorf("after the 404s: %+v, %v", res, err)
	}
	bad := openai.NewClient(option.WithBaseURL("http://"+web+"/v1/"), option.WithAPIKey("wrong"), option.WithMaxRetries(0))
	_, err := bad.Chat.Completions.New(ctx, params)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || apiErr.Code != "invalid_api_key" {
		t.Errorf("wrong key: %v, want 401 invalid_api_key", err)
	}
}

func TestOpenAIStreamingRelaysTheProviderStream(t *testing.T) {
	ai, c, _ := openAIGateway(t)
	gate := holdStreams(t, ai)
	for _, stateless := range []bool{false, true} {
		params := openai.ChatCompletionNewParams{Messages: userMessages("stream please"),
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}}
		if !stateless {
			params.User = openai.String("dana")
		}
		type result struct {
			acc openai.ChatCompletionAccumulator
			err error
		}
		deltas := make(chan string, 64)
		done := make(chan result, 1)
		go func() {
			s := c.Chat.Completions.NewStreaming(context.Background(), params)
			var r result
			for s.Next() {
				ch := s.Current()
				r.acc.AddChunk(ch)
				if len(ch.Choices) > 0 && ch.Choices[0].Delta.Content != "" {
					deltas <- ch.Choices[0].Delta.Content
				}
			}
			r.err = s.Err()
			done <- r
		}()
		// The first words arrive while the provider still holds the rest.
		select {
		case d := <-deltas:
			if d != "turns=1 " {
				t.Errorf("stateless %v: first chunk %q, want the provider's first word", stateless, d)
			}
		case r := <-done:
			t.Fatalf("stateless %v: the stream ended (%v) before the provider finished", stateless, r.err)
		case <-time.After(20 * time.Second):
			t.Fatalf("stateless %v: no chunk while the provider holds its stream", stateless)
		}
		if ai.InFlight() != 1 {
			t.Errorf("stateless %v: the provider is not holding its stream (%d in flight)", stateless, ai.InFlight())
		}
		gate.release()
		var r result
		select {
		case r = <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("stateless %v: the stream did not end", stateless)
		}
		want := "turns=1 last=stream please"
		if r.err != nil || len(r.acc.Choices) != 1 || r.acc.Choices[0].Message.Content != want || r.acc.Choices[0].FinishReason != "stop" {
			t.Fatalf("stateless %v: stream = %+v, %v; want %q", stateless, r.acc.ChatCompletion, r.err, want)
		}
		p, n := providertest.CountWords(ai.LastRequest(), want)
		if u := r.acc.Usage; u.PromptTokens != int64(p) || u.CompletionTokens != int64(n) {
			t.Errorf("stateless %v: usage = %+v, want %d+%d (stream_options.include_usage)", stateless, u, p, n)
		}
		gate.rearm()
	}
}
