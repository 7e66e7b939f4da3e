package adapter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
	"github.com/hashicorp/go-hclog"
)

// requestTimeout bounds one call other than a long poll.
const requestTimeout = 20 * time.Second

// pollSlack is how much longer than its timeout a long poll may take before
// the plugin gives up on it.
const pollSlack = 10 * time.Second

// api talks to the Bot API. Sends, typing, getMe and webhooks go through
// go-telegram/bot; getUpdates is ours, because the library's polling loop
// moves the offset on before an update is handled, and the offset must move
// only once the host has taken the message.
type api struct {
	bot       *bot.Bot
	http      *http.Client
	transport *http.Transport
	base      string // {api_url}/bot{token}/
	token     string
}

func newAPI(s settings, logger hclog.Logger) (*api, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// Requests carry their own deadlines (a long poll outlives
	// requestTimeout), so the client has none.
	client := &http.Client{Transport: transport}
	b, err := bot.New(s.token,
		bot.WithSkipGetMe(), // Run checks the token, so Configure makes no request
		bot.WithServerURL(s.apiURL),
		bot.WithHTTPClient(s.pollTimeout, client),
		bot.WithErrorsHandler(func(err error) { logger.Debug("telegram client", "error", err) }),
		bot.WithDebugHandler(func(string, ...any) {}),
	)
	if err != nil {
		return nil, fmt.Errorf("creating the telegram client: %w", err)
	}
	return &api{bot: b, http: client, transport: transport, base: s.apiURL + "/bot" + s.token + "/", token: s.token}, nil
}

// call bounds a library call by requestTimeout.
func call[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	return f(ctx)
}

func (c *api) getMe(ctx context.Context) (*models.User, error) {
	me, err := call(ctx, c.bot.GetMe)
	if err != nil {
		return nil, fmt.Errorf("getMe: %w", err)
	}
	return me, nil
}

func (c *api) webhookURL(ctx context.Context) (string, error) {
	info, err := call(ctx, c.bot.GetWebhookInfo)
	if err != nil {
		return "", fmt.Errorf("getWebhookInfo: %w", err)
	}
	return info.URL, nil
}

func (c *api) deleteWebhook(ctx context.Context) error {
	_, err := call(ctx, func(ctx context.Context) (bool, error) {
		// Pending updates stay: they are messages nobody answered yet.
		return c.bot.DeleteWebhook(ctx, &bot.DeleteWebhookParams{DropPendingUpdates: false})
	})
	if err != nil {
		return fmt.Errorf("deleteWebhook: %w", err)
	}
	return nil
}

// apiResponse is the Bot API's answer envelope.
type apiResponse struct {
	OK          bool            `json:"ok"`
	Result      json.RawMessage `json:"result"`
	ErrorCode   int             `json:"error_code"`
	Description string          `json:"description"`
	Parameters  struct {
		RetryAfter int `json:"retry_after"`
	} `json:"parameters"`
}

// getUpdates asks for the updates at or after offset (0: from the oldest
// Telegram still holds), waiting up to timeout for one. Asking with an
// offset confirms every update before it: Telegram forgets them.
func (c *api) getUpdates(ctx context.Context, offset int64, timeout time.Duration) ([]*models.Update, error) {
	params := map[string]any{
		"timeout":         int(timeout / time.Second),
		"allowed_updates": []string{"message"},
	}
	if offset > 0 {
		params["offset"] = offset
	}
	body, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("getUpdates: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+pollSlack)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"getUpdates", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("getUpdates: %w", redact(err, c.token))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("getUpdates: %w", redact(err, c.token))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("getUpdates: reading the answer: %w", redact(err, c.token))
	}
	var r apiResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		// Not the Bot API talking: a proxy's 502 page, say.
		return nil, &APIError{Method: "getUpdates", Status: resp.StatusCode, Description: http.StatusText(resp.StatusCode)}
	}
	if !r.OK {
		code := r.ErrorCode
		if code == 0 {
			code = resp.StatusCode
		}
		return nil, &APIError{Method: "getUpdates", Status: code, Description: r.Description, RetryAfter: r.Parameters.RetryAfter}
	}
	var updates []*models.Update
	if err := json.Unmarshal(r.Result, &updates); err != nil {
		return nil, fmt.Errorf("getUpdates: decoding the updates: %w", err)
	}
	return updates, nil
}

// redact takes the token out of an error that quotes the request URL.
func redact(err error, token string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = strings.ReplaceAll(ue.URL, token, "***")
	}
	return err
}

func (c *api) close() { c.transport.CloseIdleConnections() }
