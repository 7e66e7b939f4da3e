package agent

import (
	"errors"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/router"
)

// The router shows a UserError's message as it is, without the prefix it
// puts before other failures.
var _ router.UserError = (*UserError)(nil)

// UserError is a failure whose Message can be shown to the chat user as is.
// The cause stays reachable with errors.As / errors.Is (for instance a
// *provider.Error).
type UserError struct {
	Message string
	Err     error
	// Code is the machine-readable reason the reply to the user carries
	// (shared.CodeModelNotFound), "" for none.
	Code string
}

// ReplyCode returns Code: it implements router.ReplyCoder.
func (e *UserError) ReplyCode() string { return e.Code }

// Error returns Message: the text for the user.
func (e *UserError) Error() string { return e.Message }

// UserMessage returns Message: it implements router.UserError.
func (e *UserError) UserMessage() string { return e.Message }

// Unwrap returns the cause.
func (e *UserError) Unwrap() error { return e.Err }

// LogDetails returns the level the failure deserves in the log (error for
// what only the operator can fix: a rejected key, a misconfigured provider;
// warn otherwise) and key/value pairs saying what happened: for a provider
// failure its HTTP status, the provider's own message and the number of
// attempts. The API key never appears: provider messages are redacted.
func (e *UserError) LogDetails() (hclog.Level, []any) {
	var pe *provider.Error
	if !errors.As(e.Err, &pe) {
		if e.Err == nil {
			return hclog.Warn, nil
		}
		return hclog.Warn, []any{"cause", e.Err.Error()}
	}
	fields := []any{"provider", pe.Provider, "kind", string(pe.Kind), "attempts", pe.Attempts}
	if pe.Status != 0 {
		fields = append(fields, "status", pe.Status)
	}
	if pe.Message != "" {
		fields = append(fields, "provider_message", pe.Message)
	}
	if pe.Err != nil {
		fields = append(fields, "cause", pe.Err.Error())
	}
	level := hclog.Warn
	if pe.Kind == provider.KindAuth || pe.Kind == provider.KindMisconfigured {
		level = hclog.Error
	}
	return level, fields
}

// userError turns a provider failure into words for the user.
func userError(model string, err error) error {
	var pe *provider.Error
	if !errors.As(err, &pe) {
		return &UserError{Message: "the reply failed: " + err.Error(), Err: err}
	}
	var msg string
	switch pe.Kind {
	case provider.KindAuth:
		msg = fmt.Sprintf("the provider rejected the API key (provider %q, HTTP %d): check its api_key", pe.Provider, pe.Status)
	case provider.KindUnknownModel:
		msg = fmt.Sprintf("the model %q is unknown to provider %q: pick another with /model PROVIDER/MODEL", model, pe.Provider)
	case provider.KindTimeout:
		msg = fmt.Sprintf("provider %q did not answer in time (%s); try again", pe.Provider, pe.Message)
	case provider.KindRateLimited:
		msg = fmt.Sprintf("provider %q is rate limiting requests; try again in a while", pe.Provider)
	case provider.KindUnavailable:
		msg = fmt.Sprintf("provider %q is unavailable right now; try again later", pe.Provider)
	case provider.KindBadRequest:
		msg = fmt.Sprintf("provider %q refused the request: %s", pe.Provider, pe.Message)
	case provider.KindBadResponse:
		msg = fmt.Sprintf("provider %q sent a reply that could not be read", pe.Provider)
	case provider.KindMisconfigured:
		msg = fmt.Sprintf("provider %q cannot be reached as configured: %s", pe.Provider, pe.Message)
	case provider.KindClosed:
		msg = "the reply was interrupted because this session's agent was replaced; send your message again"
	default:
		msg = "the reply failed: " + pe.Error()
	}
	return &UserError{Message: msg, Err: err}
}
