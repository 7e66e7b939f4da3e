package shared_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/plughost/gateway/shared"

	"github.com/plughost/gateway/shared/kit/fakekit"
)

// waitTimeout bounds every wait in these tests; nothing here should take
// more than a fraction of it.
const waitTimeout = 5 * time.Second

// runResult is what a client-side Run returned.
type runResult struct {
	err error
}

// startRun calls the client's Run in a goroutine and returns the events it
// forwards and a channel with its result.
func startRun(ctx context.Context, c shared.Platform, buf int) (<-chan shared.Event, <-chan runResult) {
	events := make(chan shared.Event, buf)
	done := make(chan runResult, 1)
	go func() { done <- runResult{err: c.Run(ctx, events)} }()
	return events, done
}

func nextEvent(t *testing.T, events <-chan shared.Event) shared.Event {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(waitTimeout):
		t.Fatal("no event within the deadline")
		return shared.Event{}
	}
}

func waitRun(t *testing.T, done <-chan runResult) error {
	t.Helper()
	select {
	case r := <-done:
		return r.err
	case <-time.After(waitTimeout):
		t.Fatal("client Run did not return within the deadline")
		return nil
	}
}

func TestDescribeRoundTripsSchema(t *testing.T) {
	want := shared.Description{
		Name:        "fake",
		Version:     "1.2.3",
		Description: "a fake platform",
		Schema: []shared.Attribute{
			{Name: "token", Type: shared.TypeString, Required: true, Sensitive: true, Description: "bot token"},
			{Name: "listen", Type: shared.TypeString, Default: "127.0.0.1:8788"},
			{Name: "mention", Type: shared.TypeBool, Default: true},
			{Name: "off", Type: shared.TypeBool, Default: false},
			{Name: "max_body", Type: shared.TypeNumber, Default: 65536},
			{Name: "ratio", Type: shared.TypeNumber, Default: 0.25},
			{Name: "channels", Type: shared.TypeListOfString, Default: []string{"general", "random"}},
			{Name: "empty_list", Type: shared.TypeListOfString, Default: []string{}},
			{Name: "timeout", Type: shared.TypeDuration, Default: "30s"},
			{Name: "optional", Type: shared.TypeString},
		},
	}
	c := shared.TestPlatformV2(t, &shared.FakePlatform{
		DescribeFunc: func(context.Context) (shared.Description, error) { return want, nil },
	})
	got, err := c.Describe(context.Background())
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if got.Name != want.Name || got.Version != want.Version || got.Description != want.Description {
		t.Errorf("identity = %q %q %q, want %q %q %q", got.Name, got.Version, got.Description, want.Name, want.Version, want.Description)
	}
	if len(got.Schema) != len(want.Schema) {
		t.Fatalf("schema has %d attributes, want %d", len(got.Schema), len(want.Schema))
	}
	// Numbers come back as JSON numbers (float64), lists as []string.
	wantDefaults := []any{nil, "127.0.0.1:8788", true, false, float64(65536), 0.25, []string{"general", "random"}, []string{}, "30s", nil}
	for i, g := range got.Schema {
		w := want.Schema[i]
		if g.Name != w.Name || g.Type != w.Type || g.Required != w.Required || g.Sensitive != w.Sensitive || g.Description != w.Description {
			t.Errorf("attribute %d = %+v, want %+v", i, g, w)
		}
		if !reflect.DeepEqual(g.Default, wantDefaults[i]) {
			t.Errorf("attribute %q default = %#v (%T), want %#v (%T)", g.Name, g.Default, g.Default, wantDefaults[i], wantDefaults[i])
		}
	}
}

func TestDescribeRejectsUnencodableDefault(t *testing.T) {
	c := shared.TestPlatformV2(t, &shared.FakePlatform{
		DescribeFunc: func(context.Context) (shared.Description, error) {
			return shared.Description{Name: "bad", Schema: []shared.Attribute{
				{Name: "weird", Type: shared.TypeString, Default: make(chan int)},
			}}, nil
		},
	})
	if _, err := c.Describe(context.Background()); err == nil {
		t.Fatal("Describe with a default JSON cannot encode: got nil error")
	}
}

func TestDescribeErrorReachesHost(t *testing.T) {
	c := shared.TestPlatformV2(t, &shared.FakePlatform{
		DescribeFunc: func(context.Context) (shared.Description, error) {
			return shared.Description{}, errors.New("describe broke")
		},
	})
	if _, err := c.Describe(context.Background()); err == nil {
		t.Fatal("Describe error was lost")
	}
}

func TestConfigurePassesJSONAndLogger(t *testing.T) {
	var got shared.Config
	c := shared.TestPlatformV2(t, &shared.FakePlatform{
		ConfigureFunc: func(_ context.Context, cfg shared.Config) error {
			got = cfg
			return nil
		},
	})
	raw := json.RawMessage(`{"listen":"127.0.0.1:1","max_body":10,"channels":["a","b"]}`)
	// Config.Logger is not sent over the wire: the plugin supplies its own.
	if err := c.Configure(context.Background(), shared.Config{Raw: raw}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if !bytes.Equal(got.Raw, raw) {
		t.Errorf("plugin got config %s, want %s", got.Raw, raw)
	}
	if got.Logger == nil {
		t.Error("plugin got no logger")
	}
	var decoded struct {
		Listen   string   `json:"listen"`
		MaxBody  int      `json:"max_body"`
		Channels []string `json:"channels"`
	}
	if err := got.Decode(&decoded); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if decoded.Listen != "127.0.0.1:1" || decoded.MaxBody != 10 || !reflect.DeepEqual(decoded.Channels, []string{"a", "b"}) {
		t.Errorf("decoded = %+v", decoded)
	}
}

func TestConfigureFatalErrorArrivesAsFatalError(t *testing.T) {
	want := &shared.FatalError{Code: "invalid_config", Message: "token is malformed", Hint: "check DISCORD_TOKEN"}
	c := shared.TestPlatformV2(t, &shared.FakePlatform{
		ConfigureFunc: func(context.Context, shared.Config) error {
			return fmt.Errorf("configuring: %w", want) // wrapped: still fatal
		},
	})
	err := c.Configure(context.Background(), shared.Config{Raw: []byte(`{}`)})
	var fatal *shared.FatalError
	if !errors.As(err, &fatal) {
		t.Fatalf("Configure error = %v (%T), want *FatalError", err, err)
	}
	if *fatal != *want {
		t.Errorf("fatal = %+v, want %+v", fatal, want)
	}
	if fatal.Error() != "token is malformed: check DISCORD_TOKEN" {
		t.Errorf("Error() = %q", fatal.Error())
	}
}

func TestConfigurePlainErrorIsNotFatal(t *testing.T) {
	c := shared.TestPlatformV2(t, &shared.FakePlatform{
		ConfigureFunc: func(context.Context, shared.Config) error { return errors.New("disk full") },
	})
	err := c.Configure(context.Background(), shared.Config{})
	var fatal *shared.FatalError
	if err == nil || errors.As(err, &fatal) {
		t.Fatalf("Configure error = %v, want a non-fatal error", err)
	}
}

func TestRunStreamsMessagesAndHealthInOrder(t *testing.T) {
	const n = 200
	c := shared.TestPlatformV2(t, &shared.FakePlatform{
		RunFunc: func(ctx context.Context, events chan<- shared.Event) error {
			send := func(ev shared.Event) bool {
				select {
				case events <- ev:
					return true
				case <-ctx.Done():
					return false
				}
			}
			if !send(shared.Event{Health: &shared.Health{State: shared.Connected, Message: "up"}}) {
				return nil
			}
			for i := range n {
				ev := shared.Event{Message: sentMessage(i)}
				if i == n/2 {
					if !send(shared.Event{Health: &shared.Health{State: shared.Degraded, Message: "blip"}}) {
						return nil
					}
				}
				if !send(ev) {
					return nil
				}
			}
			<-ctx.Done()
			return nil
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, done := startRun(ctx, c, 0)

	ev := nextEvent(t, events)
	if ev.Health == nil || ev.Health.State != shared.Connected || ev.Health.Message != "up" {
		t.Fatalf("first event = %+v, want Connected health", ev)
	}
	for i := range n {
		if i == n/2 {
			ev := nextEvent(t, events)
			if ev.Health == nil || ev.Health.State != shared.Degraded || ev.Health.Message != "blip" {
				t.Fatalf("event before message %d = %+v, want Degraded health", i, ev)
			}
		}
		ev := nextEvent(t, events)
		want := *sentMessage(i)
		if ev.Message == nil || !reflect.DeepEqual(*ev.Message, want) {
			t.Fatalf("event %d = %+v, want message %+v", i, ev, want)
		}
	}
	cancel()
	if err := waitRun(t, done); err != nil {
		t.Errorf("Run after the host cancelled it = %v, want nil", err)
	}
}

func TestRunFatalErrorSendsFatalHealthAndReturnsFatal(t *testing.T) {
	want := &shared.FatalError{Code: "token_rejected", Message: "Discord rejected the bot token (close 4004)", Hint: "check DISCORD_TOKEN"}
	c := shared.TestPlatformV2(t, &shared.FakePlatform{
		RunFunc: func(ctx context.Context, events chan<- shared.Event) error {
			events <- shared.Event{Health: &shared.Health{State: shared.Connected}}
			return want
		},
	})
	events, done := startRun(context.Background(), c, 8)
	err := waitRun(t, done)
	var fatal *shared.FatalError
	if !errors.As(err, &fatal) || *fatal != *want {
		t.Fatalf("Run = %v (%T), want %+v", err, err, want)
	}
	if ev := nextEvent(t, events); ev.Health == nil || ev.Health.State != shared.Connected {
		t.Fatalf("first event = %+v, want Connected", ev)
	}
	ev := nextEvent(t, events)
	if ev.Health == nil || ev.Health.State != shared.Fatal {
		t.Fatalf("second event = %+v, want a FATAL health event", ev)
	}
	if ev.Health.Fatal == nil || *ev.Health.Fatal != *want || ev.Health.Message != want.Message {
		t.Errorf("fatal health = %+v (fatal %+v), want %+v", ev.Health, ev.Health.Fatal, want)
	}
}

func TestRunFatalHealthEventWithoutDetailIsFatal(t *testing.T) {
	// A plugin may report Fatal itself; the host treats it as the end.
	c := shared.TestPlatformV2(t, &shared.FakePlatform{
		RunFunc: func(ctx context.Context, events chan<- shared.Event) error {
			events <- shared.Event{Health: &shared.Health{State: shared.Fatal, Message: "intents not allowed"}}
			<-ctx.Done()
			return nil
		},
	})
	events, done := startRun(context.Background(), c, 8)
	err := waitRun(t, done)
	var fatal *shared.FatalError
	if !errors.As(err, &fatal) || fatal.Message != "intents not allowed" {
		t.Fatalf("Run = %v, want *FatalError with the health message", err)
	}
	if ev := nextEvent(t, events); ev.Health == nil || ev.Health.State != shared.Fatal {
		t.Fatalf("event = %+v, want the FATAL health event forwarded", ev)
	}
}

func TestRunPlainErrorIsTransient(t *testing.T) {
	c := shared.TestPlatformV2(t, &shared.FakePlatform{
		RunFunc: func(context.Context, chan<- shared.Event) error { return errors.New("connection reset") },
	})
	_, done := startRun(context.Background(), c, 8)
	err := waitRun(t, done)
	var fatal *shared.FatalError
	if err == nil || errors.As(err, &fatal) {
		t.Fatalf("Run = %v, want a non-nil, non-fatal error", err)
	}
}

func TestRunNilReturnsNil(t *testing.T) {
	c := shared.TestPlatformV2(t, &shared.FakePlatform{
		RunFunc: func(context.Context, chan<- shared.Event) error { return nil },
	})
	_, done := startRun(context.Background(), c, 8)
	if err := waitRun(t, done); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

// TestRunFlushesEventsQueuedBeforeReturn catches a server that stops reading
// the plugin's events as soon as Run returns: the events are buffered, and
// Run's return races with them.
func TestRunFlushesEventsQueuedBeforeReturn(t *testing.T) {
	for _, tc := range []struct {
		name string
		ret  error
	}{
		{"nil", nil},
		{"fatal", &shared.FatalError{Code: "gone", Message: "gone"}},
		{"transient", errors.New("transient")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 50 // fits the server's buffer: Run never blocks
			for round := range 10 {
				c := shared.TestPlatformV2(t, &shared.FakePlatform{
					RunFunc: func(_ context.Context, events chan<- shared.Event) error {
						for i := range n {
							events <- shared.Event{Message: &shared.Message{ID: fmt.Sprint(i)}}
						}
						return tc.ret
					},
				})
				events, done := startRun(context.Background(), c, n+1)
				err := waitRun(t, done)
				if (err == nil) != (tc.ret == nil) {
					t.Fatalf("round %d: Run = %v, want error %v", round, err, tc.ret)
				}
				for i := range n {
					select {
					case ev := <-events:
						if ev.Message == nil || ev.Message.ID != fmt.Sprint(i) {
							t.Fatalf("round %d: event %d = %+v", round, i, ev)
						}
					default:
						t.Fatalf("round %d: only %d of %d queued events arrived", round, i, n)
					}
				}
				if tc.name == "fatal" {
					if ev := <-events; ev.Health == nil || ev.Health.State != shared.Fatal {
						t.Fatalf("round %d: after the messages got %+v, want the FATAL event", round, ev)
					}
				}
			}
		})
	}
}

func TestRunCancelledByHostEndsPluginRun(t *testing.T) {
	started := make(chan struct{})
	ended := make(chan struct{})
	c := shared.TestPlatformV2(t, &shared.FakePlatform{
		RunFunc: func(ctx context.Context, events chan<- shared.Event) error {
			close(started)
			<-ctx.Done()
			close(ended)
			return nil
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	_, done := startRun(ctx, c, 8)
	select {
	case <-started:
	case <-time.After(waitTimeout):
		t.Fatal("plugin Run never started")
	}
	cancel()
	select {
	case <-ended:
	case <-time.After(waitTimeout):
		t.Fatal("cancelling the host's Run did not cancel the plugin's Run ctx")
	}
	// The contract: Run returns nil once its ctx is cancelled.
	if err := waitRun(t, done); err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
}

func TestRunCancelledWhileHostIsNotReading(t *testing.T) {
	// The host's events channel is full and nobody reads it: cancelling
	// the host's ctx must still end Run on both sides.
	ended := make(chan struct{})
	c := shared.TestPlatformV2(t, &shared.FakePlatform{
		RunFunc: func(ctx context.Context, events chan<- shared.Event) error {
			defer close(ended)
			for i := 0; ; i++ {
				select {
				case events <- shared.Event{Message: &shared.Message{ID: fmt.Sprint(i)}}:
				case <-ctx.Done():
					return nil
				}
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	events, done := startRun(ctx, c, 0)
	nextEvent(t, events) // the stream works; now stop reading
	cancel()
	if err := waitRun(t, done); err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
	select {
	case <-ended:
	case <-time.After(waitTimeout):
		t.Fatal("the plugin's Run did not end")
	}
}

func TestFakePlatformRunDefaultsToConnected(t *testing.T) {
	c := shared.TestPlatformV2(t, &shared.FakePlatform{})
	ctx, cancel := context.WithCancel(context.Background())
	events, done := startRun(ctx, c, 8)
	if ev := nextEvent(t, events); ev.Health == nil || ev.Health.State != shared.Connected {
		t.Fatalf("event = %+v, want Connected", ev)
	}
	ids, err := c.Send(context.Background(), shared.Reply{Text: "x"})
	if err != nil || len(ids) != 0 {
		t.Errorf("Send = %v, %v", ids, err)
	}
	if err := c.Typing(context.Background(), shared.Conversation{}); err != nil {
		t.Errorf("Typing = %v", err)
	}
	cancel()
	if err := waitRun(t, done); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	d, err := c.Describe(context.Background())
	if err != nil || d.Name != "fake" {
		t.Errorf("Describe = %+v, %v", d, err)
	}
	if _, err := c.Send(context.Background(), shared.Reply{Text: "x"}); !errors.Is(err, shared.ErrStreamClosed) {
		t.Errorf("Send after Run = %v, want ErrStreamClosed", err)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Errorf("Stop = %v", err)
	}
}

func TestSendRoundTripsReplyAndIDs(t *testing.T) {
	var got shared.Reply
	c := shared.TestPlatformV2(t, &shared.FakePlatform{
		SendFunc: func(_ context.Context, r shared.Reply) ([]string, error) {
			got = r
			return []string{"m1", "m2", "m3"}, nil
		},
	})
	connect(t, c)
	want := shared.Reply{ConversationID: "c", ThreadID: "t", ReplyToID: "in-1", Text: "hello\nworld ✓", Kind: shared.KindNotice,
		Code: shared.CodeModelNotFound, Usage: &shared.Usage{PromptTokens: 7, CompletionTokens: 3}}
	ids, err := c.Send(context.Background(), want)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if !reflect.DeepEqual(ids, []string{"m1", "m2", "m3"}) {
		t.Errorf("ids = %v", ids)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plugin got %+v, want %+v", got, want)
	}
	for _, k := range []shared.ReplyKind{shared.KindReply, shared.KindNotice, shared.KindError} {
		if _, err := c.Send(context.Background(), shared.Reply{Kind: k}); err != nil || got.Kind != k {
			t.Errorf("kind %d arrived as %d (err %v)", k, got.Kind, err)
		}
	}
}

func TestSendFatalArrivesAsFatalError(t *testing.T) {
	want := &shared.FatalError{Code: "token_rejected", Message: "HTTP 401", Hint: "renew the token"}
	c := shared.TestPlatformV2(t, &shared.FakePlatform{
		SendFunc: func(context.Context, shared.Reply) ([]string, error) { return []string{"partial"}, want },
	})
	connect(t, c)
	ids, err := c.Send(context.Background(), shared.Reply{Text: "x"})
	var fatal *shared.FatalError
	if !errors.As(err, &fatal) || *fatal != *want {
		t.Fatalf("Send = %v (%T), want %+v", err, err, want)
	}
	if !reflect.DeepEqual(ids, []string{"partial"}) {
		t.Errorf("ids posted before the fatal error = %v, want [partial]", ids)
	}
}

func TestSendPlainErrorIsNotFatal(t *testing.T) {
	c := shared.TestPlatformV2(t, &shared.FakePlatform{
		SendFunc: func(context.Context, shared.Reply) ([]string, error) { return nil, errors.New("rate limited") },
	})
	connect(t, c)
	_, err := c.Send(context.Background(), shared.Reply{})
	var fatal *shared.FatalError
	if err == nil || errors.As(err, &fatal) {
		t.Fatalf("Send = %v, want a non-fatal error", err)
	}
}

func TestTypingPassesConversationV1(t *testing.T) {
	var got shared.Conversation
	fail := false
	c := shared.TestPlatform(t, &shared.FakePlatform{
		TypingFunc: func(_ context.Context, conv shared.Conversation) error {
			got = conv
			if fail {
				return errors.New("no typing here")
			}
			return nil
		},
	})
	want := shared.Conversation{ConversationID: "c", ThreadID: "t"}
	if err := c.Typing(context.Background(), want); err != nil {
		t.Fatalf("Typing: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plugin got %+v, want %+v", got, want)
	}
	fail = true
	if err := c.Typing(context.Background(), want); err == nil {
		t.Error("Typing error was lost")
	}
}

func TestStopReachesPlugin(t *testing.T) {
	var calls int
	var fail error
	c := shared.TestPlatformV2(t, &shared.FakePlatform{
		StopFunc: func(context.Context) error { calls++; return fail },
	})
	if err := c.Stop(context.Background()); err != nil || calls != 1 {
		t.Fatalf("Stop = %v after %d calls", err, calls)
	}
	fail = errors.New("could not close")
	if err := c.Stop(context.Background()); err == nil {
		t.Error("Stop error was lost")
	}
}

// testPlatformWithLogger is TestPlatform with a logger we can inspect.
func testPlatformWithLogger(t *testing.T, impl shared.Platform, logger hclog.Logger) *shared.GRPCClient {
	t.Helper()
	client, server := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{
		shared.PluginName: &shared.GRPCPlugin{Impl: impl, Logger: logger},
	})
	t.Cleanup(func() {
		// Stop the server first: client.Close asks the server to stop
		// itself over the controller service, and a second, concurrent
		// server.Stop races with it on the broker.
		server.Stop()
		_ = client.Close()
	})
	raw, err := client.Dispense(shared.PluginName)
	if err != nil {
		t.Fatalf("dispensing: %v", err)
	}
	return raw.(*shared.GRPCClient)
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer = fakekit.SyncBuffer

func TestSetLogLevel(t *testing.T) {
	var out syncBuffer
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: &out})
	var pluginLogger hclog.Logger
	c := testPlatformWithLogger(t, &shared.FakePlatform{
		ConfigureFunc: func(_ context.Context, cfg shared.Config) error {
			pluginLogger = cfg.Logger
			return nil
		},
	}, logger)
	ctx := context.Background()
	if err := c.ConfigureWithLevel(ctx, shared.Config{Raw: []byte(`{}`)}, "warn"); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if pluginLogger != logger {
		t.Fatal("the plugin did not get the logger its GRPCPlugin was given")
	}
	if got := logger.GetLevel(); got != hclog.Warn {
		t.Errorf("level after ConfigureWithLevel(warn) = %s", got)
	}
	// An unknown level in Configure leaves the level as it was rather than
	// silently logging everything.
	if err := c.ConfigureWithLevel(ctx, shared.Config{}, "loud"); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if got := logger.GetLevel(); got != hclog.Warn {
		t.Errorf("level after ConfigureWithLevel(loud) = %s, want warn kept", got)
	}

	if err := c.SetLogLevel(ctx, "debug"); err != nil {
		t.Fatalf("SetLogLevel(debug): %v", err)
	}
	if !pluginLogger.IsDebug() {
		t.Error("plugin logger is not at debug after SetLogLevel(debug)")
	}
	pluginLogger.Debug("now visible")
	if err := c.SetLogLevel(ctx, "ERROR"); err != nil {
		t.Fatalf("SetLogLevel(ERROR): %v", err)
	}
	pluginLogger.Info("now hidden")
	if s := out.String(); !bytes.Contains([]byte(s), []byte("now visible")) || bytes.Contains([]byte(s), []byte("now hidden")) {
		t.Errorf("log output = %q", s)
	}

	if err := c.SetLogLevel(ctx, "verbose"); err == nil {
		t.Error("SetLogLevel(verbose) = nil, want an error for an unknown level")
	}
	if got := logger.GetLevel(); got != hclog.Error {
		t.Errorf("level after a rejected SetLogLevel = %s, want error kept", got)
	}
}

// sentMessage is the i-th message of the event stream tests: every field
// set, turn options (a model, a stateless history) on every third.
func sentMessage(i int) *shared.Message {
	m := &shared.Message{
		ID: fmt.Sprint(i), ConversationID: "c", ThreadID: "t", UserID: "u", UserName: "name",
		GuildID: "g", Direct: i%2 == 0, Text: fmt.Sprint("text ", i), UnixNano: int64(i),
	}
	if i%3 == 0 {
		m.Model = "openai/gpt-4o"
		m.Stateless = &shared.Stateless{History: []shared.HistoryMessage{{Role: "system", Text: "be brief"}, {Role: "user", Text: "hi"}, {Role: "assistant", Text: "hello"}}}
	}
	return m
}
