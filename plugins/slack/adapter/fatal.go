package adapter

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/slack-go/slack"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// Fatal error codes this plugin reports to the host, besides the toolkit's
// kit.CodeTokenRejected and kit.CodeInvalidConfig.
const (
	CodeMissingScope = "missing_scope"
	CodeAPINotFound  = "api_not_found"
	CodeSocketMode   = "socket_mode_disabled"
	CodeUninstalled  = "app_uninstalled"
)

// tokenKind names one of the two tokens, for messages and hints.
type tokenKind struct {
	attr   string // config attribute
	env    string // the env var config.hcl reads it from
	prefix string
	what   string
	where  string
}

var (
	botToken = tokenKind{attr: "bot_token", env: "SLACK_BOT_TOKEN", prefix: "xoxb-", what: "Bot User OAuth Token (xoxb-…)",
		where: "Slack app settings → OAuth & Permissions → Bot User OAuth Token; reinstall the app to the workspace if it was revoked"}
	appToken = tokenKind{attr: "app_token", env: "SLACK_APP_TOKEN", prefix: "xapp-", what: "app-level token (xapp-…) with the connections:write scope",
		where: "Slack app settings → Basic Information → App-Level Tokens; generate a new one if it was revoked or expired"}
)

// rejectedTokenErrors are the Web API errors that mean the token itself is
// no good. slack-go's socketmode gives up only on the first four and
// retries the rest for minutes; here every one is fatal.
var rejectedTokenErrors = map[string]bool{
	"invalid_auth":           true,
	"not_authed":             true,
	"account_inactive":       true,
	"token_revoked":          true,
	"token_expired":          true,
	"not_allowed_token_type": true,
	"ekm_access_denied":      true,
}

func invalidConfig(msg, hint string) *shared.FatalError {
	return kit.InvalidConfig("slack: "+msg, hint)
}

// tokenRejected is the fatal error for a token Slack refused: call is the
// Web API method that said so, code its error.
func tokenRejected(kind tokenKind, call, code string) *shared.FatalError {
	hint := "check " + kind.env + " (" + kind.attr + "): it must be the " + kind.what + " from " + kind.where
	if code == "not_allowed_token_type" {
		hint = kind.env + " (" + kind.attr + ") holds the wrong kind of token: it must be the " + kind.what +
			"; bot_token takes xoxb-, app_token takes xapp-"
	}
	return kit.Unauthorized(fmt.Sprintf("Slack rejected the %s (%s: %s)", kind.attr, call, code), hint)
}

// fatalAPIError returns the fatal error for a Web API error that no retry
// can fix, made with kind's token while calling call, or nil.
func fatalAPIError(err error, kind tokenKind, call string) *shared.FatalError {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		switch {
		case rejectedTokenErrors[se.Err]:
			return tokenRejected(kind, call, se.Err)
		case se.Err == "missing_scope" && kind == appToken:
			return kit.Fatal(CodeMissingScope,
				fmt.Sprintf("the app_token lacks a scope (%s: missing_scope, needed %q)", call, se.Needed),
				"give SLACK_APP_TOKEN the connections:write scope: Slack app settings → Basic Information → App-Level Tokens")
		}
		return nil
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) && sc.Code == http.StatusNotFound {
		return kit.Fatal(CodeAPINotFound, fmt.Sprintf("the Slack Web API answered 404 for %s", call),
			"check api_url: leave it unset for Slack ("+DefaultAPIURL+")")
	}
	return nil
}

// retryAfter returns how long a 429 asked to wait, and whether err is one.
func retryAfter(err error) (time.Duration, bool) {
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return rl.RetryAfter, true
	}
	return 0, false
}
