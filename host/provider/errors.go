package provider

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Kind classifies a provider error so callers can react without matching
// strings.
type Kind string

// The error kinds. They are also the "kind" label of the provider error metric.
const (
	// KindAuth: the provider rejected the API key (401/403). Not retried.
	KindAuth Kind = "auth"
	// KindUnknownModel: the model does not exist (404, or a model_not_found error).
	KindUnknownModel Kind = "unknown_model"
	// KindBadRequest: the provider refused the request (other 4xx).
	KindBadRequest Kind = "bad_request"
	// KindRateLimited: 429 after the retries ran out.
	KindRateLimited Kind = "rate_limited"
	// KindUnavailable: 5xx or a connection failure after the retries ran out.
	KindUnavailable Kind = "unavailable"
	// KindTimeout: the provider did not answer within the configured timeout.
	KindTimeout Kind = "timeout"
	// KindBadResponse: the answer could not be decoded.
	KindBadResponse Kind = "bad_response"
	// KindClosed: the provider or the agent's client was closed.
	KindClosed Kind = "closed"
	// KindMisconfigured: the provider cannot be reached as configured (a
	// redirect, https against plain HTTP, an untrusted certificate, an
	// unknown host). Not retried; Message names what to fix.
	KindMisconfigured Kind = "misconfigured"
)

// Error is a classified provider failure. Use errors.As to get it.
type Error struct {
	Provider string
	Kind     Kind
	// Status is the HTTP status, 0 when there was none.
	Status int
	// Message is what the provider said, or what happened.
	Message string
	// Attempts is how many requests were made.
	Attempts int
	// Err is the underlying error, if any.
	Err error
}

// Error describes the failure for logs; it never contains the API key.
func (e *Error) Error() string {
	s := "provider " + strconv.Quote(e.Provider) + ": " + string(e.Kind)
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Attempts > 1 {
		s += fmt.Sprintf(" after %d attempts", e.Attempts)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of err, or "" when err is not a provider error.
func KindOf(err error) Kind {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Kind
	}
	return ""
}

// retryAfter parses a Retry-After header value (seconds or HTTP date).
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
		return time.Duration(secs * float64(time.Second)), true
	}
	if t, err := time.Parse(time.RFC1123, v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}
