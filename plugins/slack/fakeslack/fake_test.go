package fakeslack

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/goleak"

	"github.com/plughost/gateway/shared/kit/fakekit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The fake is checked against slack-go itself, Web API and socketmode
// client, so a plugin test that passes against the fake speaks what the
// real client library speaks.

func client(s *Server, bot, app string) *slack.Client {
	return slack.New(bot, slack.OptionAPIURL(s.APIURL), slack.OptionAppLevelToken(app))
}

func TestWebAPIAgainstSlackGo(t *testing.T) {
	s := New(t)
	api := client(s, DefaultBotToken, DefaultAppToken)
	ctx := context.Background()

	who, err := api.AuthTestContext(ctx)
	if err != nil || who.UserID != BotUserID || who.BotID != BotID {
		t.Fatalf("auth.test: %+v, %v", who, err)
	}
	ch, ts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("hi <there>", true), slack.MsgOptionTS("1.000001"))
	if err != nil || ch != "C1" || ts == "" {
		t.Fatalf("chat.postMessage: %q %q %v", ch, ts, err)
	}
	if p := s.Posted(); len(p) != 1 || p[0].Text != "hi &lt;there&gt;" || p[0].ThreadTS != "1.000001" || p[0].TS != ts {
		t.Fatalf("posted: %+v", p)
	}
	if _, url, err := api.StartSocketModeContext(ctx); err != nil || url == "" {
		t.Fatalf("apps.connections.open: %q %v", url, err)
	}

	// Rejections arrive as slack-go's error types.
	s.RevokeBotToken("token_revoked")
	_, err = api.AuthTestContext(ctx)
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) || se.Err != "token_revoked" {
		t.Fatalf("revoked bot token: %v, want SlackErrorResponse token_revoked", err)
	}
	wrongType := client(s, DefaultAppToken, DefaultBotToken)
	if _, _, err := wrongType.StartSocketModeContext(ctx); !errors.As(err, &se) || se.Err != "not_allowed_token_type" {
		t.Fatalf("bot token as app token: %v", err)
	}
	s.RateLimit("apps.connections.open", time.Second, 1)
	_, _, err = api.StartSocketModeContext(ctx)
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != time.Second {
		t.Fatalf("429: %v, want RateLimitedError with 1s", err)
	}
	if _, _, err := api.StartSocketModeContext(ctx); err != nil {
		t.Fatalf("after the 429: %v", err)
	}
	if s.EarlyRetries() != 1 {
		t.Fatalf("early retries = %d, want 1 (the call right after the 429)", s.EarlyRetries())
	}
	if n := s.Calls("apps.connections.open"); n != 4 {
		t.Fatalf("apps.connections.open calls = %d, want 4", n)
	}
}

func TestSocketModeAgainstSlackGo(t *testing.T) {
	s := New(t)
	smc := socketmode.New(client(s, DefaultBotToken, DefaultAppToken))
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- smc.RunContext(ctx) }()
	defer func() {
		cancel()
		<-runErr
	}()

	next := func(want socketmode.EventType) socketmode.Event {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case ev := <-smc.Events:
				if ev.Type == want {
					return ev
				}
			case <-timeout:
				t.Fatalf("no %s event", want)
			}
		}
	}
	hello := next(socketmode.EventTypeHello)
	if hello.Request.NumConnections != 1 || hello.Request.ConnectionInfo.AppID != AppID {
		t.Fatalf("hello: %+v", hello.Request)
	}

	env := s.InjectMessage(Message{Channel: "D1", ChannelType: "im", User: "U1", Text: "hello"})
	ev := next(socketmode.EventTypeEventsAPI)
	api := ev.Data.(slackevents.EventsAPIEvent)
	msg, ok := api.InnerEvent.Data.(*slackevents.MessageEvent)
	if !ok || msg.Text != "hello" || msg.ChannelType != "im" || msg.User != "U1" || msg.TimeStamp == "" {
		t.Fatalf("inner event: %#v", api.InnerEvent.Data)
	}
	if ev.Request.EnvelopeID != env || ev.Request.RetryAttempt != 0 {
		t.Fatalf("envelope: %+v", ev.Request)
	}
	if s.Acked(env) {
		t.Fatal("acked before the client acked")
	}
	smc.Ack(*ev.Request)
	deadline := time.Now().Add(10 * time.Second)
	for !s.Acked(env) {
		if time.Now().After(deadline) {
			t.Fatal("the ack never reached the fake")
		}
		time.Sleep(10 * time.Millisecond)
	}

	mention := s.InjectAppMention(Message{Channel: "C1", User: "U1", Text: "<@" + BotUserID + "> hi"})
	ev = next(socketmode.EventTypeEventsAPI)
	if _, ok := ev.Data.(slackevents.EventsAPIEvent).InnerEvent.Data.(*slackevents.AppMentionEvent); !ok {
		t.Fatalf("app_mention: %#v", ev.Data)
	}
	// Unacknowledged and the connection asked to go: slack-go reconnects
	// and the envelope comes again with retry_attempt 1.
	s.Disconnect("refresh_requested")
	next(socketmode.EventTypeConnecting)
	next(socketmode.EventTypeHello)
	ev = next(socketmode.EventTypeEventsAPI)
	if ev.Request.EnvelopeID != mention || ev.Request.RetryAttempt != 1 || ev.Request.RetryReason != "timeout" {
		t.Fatalf("redelivery: %+v", ev.Request)
	}
	// An ack lost on the way (the bot died as it wrote it) leaves the
	// envelope unacknowledged: it comes again on the next connection.
	s.LoseAcks(true)
	smc.Ack(*ev.Request)
	lostBy := time.Now().Add(10 * time.Second)
	for s.LostAcks() == 0 {
		if time.Now().After(lostBy) {
			t.Fatal("the lost ack never reached the fake")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.LoseAcks(false)
	if s.Acked(mention) {
		t.Fatal("a lost ack counted")
	}
	s.Disconnect("refresh_requested")
	next(socketmode.EventTypeHello)
	ev = next(socketmode.EventTypeEventsAPI)
	if ev.Request.EnvelopeID != mention || ev.Request.RetryAttempt != 2 {
		t.Fatalf("redelivery after a lost ack: %+v", ev.Request)
	}
	if n := s.MaxOpenConnections(); n != 1 {
		t.Fatalf("slack-go had %d connections open at once", n)
	}

	// A revoked app token ends slack-go's Run with invalid_auth.
	s.RevokeAppToken("invalid_auth")
	select {
	case err := <-runErr:
		if err == nil || err.Error() != "invalid_auth" {
			t.Fatalf("Run after revocation: %v", err)
		}
		runErr <- err
	case <-time.After(10 * time.Second):
		t.Fatal("slack-go kept running with a revoked app token")
	}
}

func TestControlAPI(t *testing.T) {
	s := New(t)
	ctx := context.Background()
	api := client(s, DefaultBotToken, DefaultAppToken)
	if err := fakekit.Call(ctx, s.URL, "revoke_bot", "token_revoked", nil); err != nil {
		t.Fatal(err)
	}
	var se slack.SlackErrorResponse
	if _, err := api.AuthTestContext(ctx); !errors.As(err, &se) || se.Err != "token_revoked" {
		t.Fatalf("after revoke_bot: %v", err)
	}
	if err := fakekit.Call(ctx, s.URL, "rate_limit", map[string]any{"method": "apps.connections.open", "retry_after_seconds": 2, "n": 1}, nil); err != nil {
		t.Fatal(err)
	}
	var rl *slack.RateLimitedError
	if _, _, err := api.StartSocketModeContext(ctx); !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second {
		t.Fatalf("after rate_limit: %v", err)
	}
	var env string
	if err := fakekit.Call(ctx, s.URL, "message", Message{Channel: "D1", ChannelType: "im", User: "U1", Text: "hi"}, &env); err != nil || env == "" {
		t.Fatalf("message: %q %v", env, err)
	}
	if err := fakekit.Call(ctx, s.URL, "lose_acks", true, nil); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	lost := s.loseAcks
	s.mu.Unlock()
	if !lost {
		t.Fatal("lose_acks did not turn LoseAcks on")
	}
	var conns map[string]int
	if err := fakekit.Call(ctx, s.URL, "connections", struct{}{}, &conns); err != nil || conns["open"] != 0 {
		t.Fatalf("connections: %v %v", conns, err)
	}
	var reqs []string
	if err := fakekit.Call(ctx, s.URL, "requests", nil, &reqs); err != nil || len(reqs) != 2 || reqs[0] != "POST /api/auth.test" {
		t.Fatalf("requests: %v %v", reqs, err)
	}
	s.SetHTTPStatus("auth.test", 503)
	var sc slack.StatusCodeError
	if _, err := api.AuthTestContext(ctx); !errors.As(err, &sc) || sc.Code != 503 {
		t.Fatalf("with a 503 fault: %v", err)
	}
}
