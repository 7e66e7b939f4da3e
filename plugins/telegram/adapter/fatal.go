package adapter

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/go-telegram/bot"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// tokenHint tells the operator how to fix a rejected token.
const tokenHint = "check the bot token (TELEGRAM_TOKEN): copy it from @BotFather (/mybots → your bot → API Token); " +
	"if it was revoked, put the new one in TELEGRAM_TOKEN and restart the platform"

// tokenRejected is the fatal error for a token Telegram refused, where err
// says which call found out and how.
func tokenRejected(err error) *shared.FatalError {
	return kit.Unauthorized(fmt.Sprintf("Telegram rejected the bot token (%v)", err), tokenHint)
}

// APIError is an error answer from the Bot API ("ok": false), or an HTTP
// error from something in front of it that did not answer in JSON.
type APIError struct {
	Method      string
	Status      int
	Description string
	// RetryAfter is parameters.retry_after of a 429, in seconds.
	RetryAfter int
}

// Error says which call failed and how.
func (e *APIError) Error() string {
	return fmt.Sprintf("%s answered %d %s", e.Method, e.Status, e.Description)
}

// status returns the HTTP status Telegram answered with, whichever client
// made the call: our getUpdates (*APIError) or go-telegram/bot, which wraps
// its sentinel errors. 0 means no answer (network) or an unclassified one.
func status(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	var tooMany *bot.TooManyRequestsError
	if errors.As(err, &tooMany) {
		return http.StatusTooManyRequests
	}
	var migrate *bot.MigrateError
	if errors.As(err, &migrate) {
		return http.StatusBadRequest
	}
	for _, c := range []struct {
		sentinel error
		status   int
	}{
		{bot.ErrorUnauthorized, http.StatusUnauthorized},
		{bot.ErrorNotFound, http.StatusNotFound},
		{bot.ErrorForbidden, http.StatusForbidden},
		{bot.ErrorBadRequest, http.StatusBadRequest},
		{bot.ErrorConflict, http.StatusConflict},
	} {
		if errors.Is(err, c.sentinel) {
			return c.status
		}
	}
	return 0
}

// isTokenRejected reports whether err means the token is not (or no longer)
// a bot's: 401, or 404, which Telegram answers for a malformed token.
func isTokenRejected(err error) bool {
	s := status(err)
	return s == http.StatusUnauthorized || s == http.StatusNotFound
}

// retryAfter returns the wait a 429 asked for, in seconds, or 0.
func retryAfter(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.RetryAfter
	}
	var tooMany *bot.TooManyRequestsError
	if errors.As(err, &tooMany) {
		return tooMany.RetryAfter
	}
	return 0
}
