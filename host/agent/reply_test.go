package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/provider/providertest"

	"github.com/plughost/gateway/shared/kit/fakekit"
)

func asUserError(err error, ue **UserError) bool { return errors.As(err, ue) }

func TestHistorySentToProviderIsCappedAtLimit(t *testing.T) {
	srv := providertest.New(t)
	cfg := openaiConfig(srv, 8, 8)
	cfg.HistoryLimit = 4
	s := newTestService(t, cfg, Options{})
	for i := range 5 {
		if _, err := s.Reply(context.Background(), "alice", fmt.Sprint("q", i)); err != nil {
			t.Fatal(err)
		}
	}
	r := srv.LastRequest()
	var got []string
	for _, m := range r.Messages {
		got = append(got, m.Role+":"+m.Content)
	}
	want := []string{"system:You are terse.", "user:q2", "assistant:reply to: q2", "user:q3", "assistant:reply to: q3", "user:q4"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("sent %q\nwant %q", got, want)
	}
	if r.Model != "m1" {
		t.Fatalf("model sent %q; want m1 (the MODEL of fake/m1)", r.Model)
	}
}

// Evicting the agent and restarting the service lose nothing: the rebuilt
// agent continues from the store.
func TestConversationSurvivesEvictionAndRestart(t *testing.T) {
	srv := providertest.New(t)
	cfg := openaiConfig(srv, 1, 8)
	dir := t.TempDir()
	s := newTestServiceAt(t, dir, cfg, Options{})
	ctx := context.Background()
	if _, err := s.Reply(ctx, "alice", "my name is Alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reply(ctx, "bob", "evicts alice's agent"); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.EvictionsByReason[ReasonCapacity] != 1 {
		t.Fatalf("stats %+v; want a capacity eviction", st)
	}
	if _, err := s.Reply(ctx, "alice", "what is my name?"); err != nil {
		t.Fatal(err)
	}
	if !sentHistory(srv.LastRequest(), "my name is Alice") {
		t.Fatalf("rebuilt agent lost the history: %+v", srv.LastRequest().Messages)
	}
	closeService(t, s)

	s2 := newTestServiceAt(t, dir, cfg, Options{})
	if _, err := s2.Reply(ctx, "alice", "still there?"); err != nil {
		t.Fatal(err)
	}
	if !sentHistory(srv.LastRequest(), "what is my name?") || !sentHistory(srv.LastRequest(), "my name is Alice") {
		t.Fatalf("history lost across restart: %+v", srv.LastRequest().Messages)
	}
}

func sentHistory(r *providertest.Request, content string) bool {
	for _, m := range r.Messages[:len(r.Messages)-1] {
		if m.Content == content {
			return true
		}
	}
	return false
}

func TestRejectedAPIKeyIsAUserError(t *testing.T) {
	srv := providertest.New(t)
	srv.APIKey = "the-right-key"
	s := newTestService(t, openaiConfig(srv, 8, 8), Options{})
	_, err := s.Reply(context.Background(), "alice", "hi")
	var ue *UserError
	if !errors.As(err, &ue) || !strings.HasPrefix(ue.Message, "the provider rejected the API key") {
		t.Fatalf("err = %v; want the API key rejection", err)
	}
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.KindAuth {
		t.Fatalf("cause = %v; want *provider.Error of kind auth", err)
	}
	if strings.Contains(ue.Message, testKey) {
		t.Fatal("the API key reached the user")
	}
	if srv.Served() != 1 {
		t.Fatalf("401 retried: %d requests", srv.Served())
	}
	if n := s.ProviderErrors()["fake"][provider.KindAuth]; n != 1 {
		t.Fatalf("auth errors counted %d", n)
	}
	if info, _ := s.Session("alice"); info.Messages != 0 {
		t.Fatalf("a failed turn was recorded: %+v", info)
	}
}

func TestRateLimitRetriedThenReported(t *testing.T) {
	srv := providertest.New(t)
	srv.Script(providertest.Scripted{Status: 429, RetryAfter: "0"})
	s := newTestService(t, openaiConfig(srv, 8, 8), Options{})
	if got, err := s.Reply(context.Background(), "alice", "hi"); err != nil || got != "reply to: hi" {
		t.Fatalf("Reply after one 429 = %q, %v", got, err)
	}
	srv.Script(providertest.Scripted{Status: 429}, providertest.Scripted{Status: 429}, providertest.Scripted{Status: 429})
	_, err := s.Reply(context.Background(), "alice", "again")
	var ue *UserError
	if !errors.As(err, &ue) || provider.KindOf(err) != provider.KindRateLimited || !strings.Contains(ue.Message, "rate limiting") {
		t.Fatalf("err = %v; want rate limited after the bounded retries", err)
	}
	if srv.Served() != 2+3 {
		t.Fatalf("served %d; want 5 (3 attempts max)", srv.Served())
	}
}

func TestUnknownModelIsAUserError(t *testing.T) {
	srv := providertest.New(t)
	srv.Models = []string{"m1"}
	s := newTestService(t, openaiConfig(srv, 8, 8), Options{})
	if err := s.SetModel(context.Background(), "alice", "fake/nonexistent"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Reply(context.Background(), "alice", "hi")
	var ue *UserError
	if !errors.As(err, &ue) || !strings.Contains(ue.Message, `"nonexistent" is unknown`) {
		t.Fatalf("err = %v", err)
	}
}

func TestStopCancelsTheReply(t *testing.T) {
	srv := providertest.New(t)
	srv.Hold = func(ctx context.Context, _ *providertest.Request) { <-ctx.Done() }
	s := newTestService(t, openaiConfig(srv, 8, 8), Options{})
	ctx, stop := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := s.Reply(ctx, "alice", "long"); errc <- err }()
	waitFor(t, "the request in flight", 5*time.Second, func() bool { return srv.InFlight() == 1 })
	stop()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want context.Canceled", err)
	}
	if info, _ := s.Session("alice"); info.Messages != 0 {
		t.Fatalf("cancelled turn recorded: %+v", info)
	}
}

func TestSetModelValidation(t *testing.T) {
	srv := providertest.New(t)
	s := newTestService(t, openaiConfig(srv, 8, 8), Options{})
	for _, bad := range []string{"", "fake", "/m", "fake/", "nope/m1"} {
		var ue *UserError
		if err := s.SetModel(context.Background(), "a", bad); !errors.As(err, &ue) {
			t.Errorf("SetModel(%q) = %v; want *UserError", bad, err)
		}
	}
	if err := s.SetModel(context.Background(), "a", "fake/vendor/model-x"); err != nil {
		t.Fatalf("model with a slash rejected: %v", err)
	}
	if m, _ := s.Model("a"); m != "fake/vendor/model-x" {
		t.Fatalf("Model = %q", m)
	}
	if m, _ := s.Model("other"); m != "fake/m1" {
		t.Fatalf("default Model = %q", m)
	}
	if got := strings.Join(s.Models(), ","); got != "echo,fake" {
		t.Fatalf("Models = %q", got)
	}
}

func TestReplyStreamDeliversDeltasAndRecordsTheTurn(t *testing.T) {
	srv := providertest.New(t)
	srv.Reply = func(r *providertest.Request) string { return "streamed answer to " + r.LastUser() }
	s := newTestService(t, openaiConfig(srv, 8, 8), Options{})
	var deltas []string
	got, err := s.ReplyStream(context.Background(), "alice", "q1", func(d string) { deltas = append(deltas, d) })
	if err != nil || got != "streamed answer to q1" {
		t.Fatalf("ReplyStream = %q, %v", got, err)
	}
	if len(deltas) < 2 || strings.Join(deltas, "") != got {
		t.Fatalf("deltas %q", deltas)
	}
	if !srv.LastRequest().Stream {
		t.Fatal("not streamed")
	}
	if _, err := s.Reply(context.Background(), "alice", "q2"); err != nil {
		t.Fatal(err)
	}
	if !sentHistory(srv.LastRequest(), "streamed answer to q1") {
		t.Fatal("streamed turn not in the history")
	}
}

// The API key reaches no log line, even at trace level and when the
// provider echoes it back in an error.
func TestAPIKeyNeverLogged(t *testing.T) {
	srv := providertest.New(t)
	srv.Script(providertest.Scripted{Status: 503, Body: `{"error":{"message":"upstream said ` + testKey + `"}}`},
		providertest.Scripted{Status: 401, Body: `{"error":{"message":"Incorrect API key provided: ` + testKey + `"}}`})
	var buf syncBuffer
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: &buf})
	s := newTestService(t, openaiConfig(srv, 8, 8), Options{Logger: log})
	_, err := s.Reply(context.Background(), "alice", "hi")
	if provider.KindOf(err) != provider.KindAuth {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), testKey) || strings.Contains(fmt.Sprintf("%+v", errors.Unwrap(err)), testKey) {
		t.Fatalf("error carries the key: %v", errors.Unwrap(err))
	}
	cfg := openaiConfig(srv, 8, 8)
	cfg.SystemPrompt = "reload"
	if err := s.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	closeService(t, s)
	if out := buf.String(); strings.Contains(out, testKey) || !strings.Contains(out, "retrying") {
		t.Fatalf("log (must show the retry, never the key):\n%s", out)
	}
}

type syncBuffer = fakekit.SyncBuffer
