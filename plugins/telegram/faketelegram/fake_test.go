package faketelegram_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
	"go.uber.org/goleak"

	"github.com/plughost/gateway/plugins/telegram/faketelegram"
	"github.com/plughost/gateway/shared/kit/fakekit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newClient returns the real go-telegram/bot client pointed at fake.
func newClient(t *testing.T, fake *faketelegram.Server, token string, opts ...bot.Option) (*bot.Bot, error) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	return bot.New(token, append([]bot.Option{
		bot.WithServerURL(fake.URL), bot.WithHTTPClient(2*time.Second, client),
		bot.WithErrorsHandler(func(error) {}),
	}, opts...)...)
}

// The fake speaks the wire protocol the real client expects: getMe,
// sendMessage with reply parameters and a thread, sendChatAction, webhooks,
// and the client's own getUpdates loop (multipart parameters, offsets).
func TestRealClientAgainstFake(t *testing.T) {
	fake := faketelegram.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	got := make(chan *models.Update, 4)
	b, err := newClient(t, fake, faketelegram.DefaultToken, bot.WithDefaultHandler(
		func(_ context.Context, _ *bot.Bot, u *models.Update) { got <- u }))
	if err != nil {
		t.Fatalf("bot.New (getMe) against the fake: %v", err)
	}
	me, err := b.GetMe(ctx)
	if err != nil || me.ID != faketelegram.BotID || me.Username != faketelegram.BotUsername || !me.IsBot {
		t.Fatalf("getMe = %+v, %v", me, err)
	}

	in := faketelegram.Group(-1001, 7, faketelegram.Mention("hi"))
	id := fake.Inject(in)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { b.Start(runCtx); close(done) }()
	var u *models.Update
	select {
	case u = <-got:
	case <-ctx.Done():
		t.Fatal("the client's getUpdates loop received nothing")
	}
	if u.ID != id || u.Message == nil || u.Message.Text != in.Text || u.Message.Chat.ID != -1001 {
		t.Fatalf("update = %+v, want id %d with the injected message", u, id)
	}
	if len(u.Message.Entities) != 1 || u.Message.Entities[0].Type != models.MessageEntityTypeMention ||
		u.Message.Entities[0].Length != len(faketelegram.BotUsername)+1 {
		t.Fatalf("entities = %+v, want one mention of the bot", u.Message.Entities)
	}
	// The client's next poll confirms the update.
	deadline := time.Now().Add(5 * time.Second)
	for fake.Confirmed() <= id && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if fake.Confirmed() != id+1 || fake.Pending() != 0 {
		t.Fatalf("confirmed %d pending %d, want %d and 0", fake.Confirmed(), fake.Pending(), id+1)
	}
	stop()
	<-done

	sent, err := b.SendMessage(ctx, &bot.SendMessageParams{
		ChatID: int64(-1001), MessageThreadID: 9, Text: "answer",
		ReplyParameters: &models.ReplyParameters{MessageID: in.ID},
	})
	if err != nil || sent.ID == 0 || sent.Text != "answer" || sent.MessageThreadID != 9 {
		t.Fatalf("sendMessage = %+v, %v", sent, err)
	}
	if p := fake.Posted(); len(p) != 1 || p[0].ChatID != -1001 || p[0].ThreadID != 9 || p[0].ReplyTo != in.ID || p[0].Text != "answer" {
		t.Fatalf("posted = %+v", p)
	}
	_, err = b.SendMessage(ctx, &bot.SendMessageParams{ChatID: int64(-1001), Text: "x",
		ReplyParameters: &models.ReplyParameters{MessageID: 999}})
	if !errors.Is(err, bot.ErrorBadRequest) {
		t.Fatalf("reply to a missing message: %v, want bad request", err)
	}
	if _, err := b.SendMessage(ctx, &bot.SendMessageParams{ChatID: int64(5), Text: strings.Repeat("😀", 2049)}); !errors.Is(err, bot.ErrorBadRequest) {
		t.Fatalf("4098 UTF-16 units: %v, want bad request (too long)", err)
	}
	if ok, err := b.SendChatAction(ctx, &bot.SendChatActionParams{ChatID: int64(5), MessageThreadID: 3, Action: models.ChatActionTyping}); !ok || err != nil {
		t.Fatalf("sendChatAction = %v, %v", ok, err)
	}
	if a := fake.Actions(); len(a) != 1 || a[0] != (faketelegram.Action{ChatID: 5, ThreadID: 3, Action: "typing"}) {
		t.Fatalf("actions = %+v", a)
	}

	fake.SetWebhook("https://example.invalid/hook")
	if info, err := b.GetWebhookInfo(ctx); err != nil || info.URL != "https://example.invalid/hook" {
		t.Fatalf("getWebhookInfo = %+v, %v", info, err)
	}
	if ok, err := b.DeleteWebhook(ctx, &bot.DeleteWebhookParams{}); !ok || err != nil || fake.Webhook() != "" {
		t.Fatalf("deleteWebhook = %v, %v; webhook now %q", ok, err, fake.Webhook())
	}
}

// Errors arrive as the client classifies Telegram's: 401, 404 for a
// malformed token, 429 with retry_after, 409.
func TestRealClientSeesErrors(t *testing.T) {
	fake := faketelegram.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := newClient(t, fake, "1000001:wrong-token"); !errors.Is(err, bot.ErrorUnauthorized) {
		t.Fatalf("wrong token: %v, want unauthorized", err)
	}
	if _, err := newClient(t, fake, "not a token"); !errors.Is(err, bot.ErrorNotFound) {
		t.Fatalf("malformed token: %v, want not found", err)
	}
	if n := fake.Count("getMe"); n != 2 {
		t.Fatalf("%d getMe requests, want 2", n)
	}

	b, err := newClient(t, fake, faketelegram.DefaultToken)
	if err != nil {
		t.Fatal(err)
	}
	fake.Fail(faketelegram.Failure{Method: "sendMessage", ChatID: 5, Status: 429, RetryAfter: 3, Times: 1})
	_, err = b.SendMessage(ctx, &bot.SendMessageParams{ChatID: int64(6), Text: "other chat"})
	if err != nil {
		t.Fatalf("a 429 for chat 5 hit chat 6: %v", err)
	}
	_, err = b.SendMessage(ctx, &bot.SendMessageParams{ChatID: int64(5), Text: "x"})
	var tooMany *bot.TooManyRequestsError
	if !errors.As(err, &tooMany) || tooMany.RetryAfter != 3 {
		t.Fatalf("forced 429: %v, want retry_after 3", err)
	}
	if _, err = b.SendMessage(ctx, &bot.SendMessageParams{ChatID: int64(5), Text: "x"}); err != nil {
		t.Fatalf("after the one forced 429: %v", err)
	}

	fake.Fail(faketelegram.Failure{Method: "sendMessage", Status: 502, Times: 1})
	if _, err = b.SendMessage(ctx, &bot.SendMessageParams{ChatID: int64(5), Text: "x"}); err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("forced 502: %v", err)
	}
}

// The control API drives the fake from outside the test's process.
func TestControlAPI(t *testing.T) {
	fake := faketelegram.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var id int64
	if err := fakekit.Call(ctx, fake.URL, "message", faketelegram.Private(5, "from outside"), &id); err != nil || id == 0 {
		t.Fatalf("inject over the control API: id %d, %v", id, err)
	}
	if fake.Pending() != 1 {
		t.Fatalf("pending = %d, want 1", fake.Pending())
	}
	if err := fakekit.Call(ctx, fake.URL, "token", "1:other", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := newClient(t, fake, faketelegram.DefaultToken); !errors.Is(err, bot.ErrorUnauthorized) {
		t.Fatalf("after the control API changed the token: %v, want unauthorized", err)
	}
	var stats map[string]int
	if err := fakekit.Call(ctx, fake.URL, "stats", nil, &stats); err != nil || stats["getMe"] != 1 || stats["requests"] != 1 {
		t.Fatalf("stats = %v, %v", stats, err)
	}
}
