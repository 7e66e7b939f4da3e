package kit

import (
	"errors"

	"github.com/plughost/gateway/shared"
)

// Fatal error codes every plugin uses for the same failure.
const (
	// CodeTokenRejected is credentials the platform refused.
	CodeTokenRejected = "token_rejected"
	// CodeInvalidConfig is a config block that no restart can fix.
	CodeInvalidConfig = "invalid_config"
)

// Unauthorized is the fatal error for credentials the platform rejected.
// message says who rejected what and how the plugin learned it ("Discord
// rejected the bot token (close 4004)"); hint names the attribute or
// environment variable to fix ("check the token (DISCORD_TOKEN) …").
func Unauthorized(message, hint string) *shared.FatalError {
	return &shared.FatalError{Code: CodeTokenRejected, Message: message, Hint: hint}
}

// InvalidConfig is the fatal error for a config block the plugin cannot
// run with; message names the attribute and what is wrong with it.
func InvalidConfig(message, hint string) *shared.FatalError {
	return &shared.FatalError{Code: CodeInvalidConfig, Message: "invalid config: " + message, Hint: hint}
}

// Fatal is a fatal error with a platform-specific code (for example
// "disallowed_intents").
func Fatal(code, message, hint string) *shared.FatalError {
	return &shared.FatalError{Code: code, Message: message, Hint: hint}
}

// AsFatal returns the *shared.FatalError in err's chain, or nil.
func AsFatal(err error) *shared.FatalError {
	var fe *shared.FatalError
	if errors.As(err, &fe) {
		return fe
	}
	return nil
}
