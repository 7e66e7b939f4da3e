package adapter

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// Fatal error codes this plugin reports to the host, besides the toolkit's
// kit.CodeTokenRejected and kit.CodeInvalidConfig.
const (
	CodeDisallowedIntents = "disallowed_intents"
	CodeInvalidIntents    = "invalid_intents"
	CodeInvalidShard      = "invalid_shard"
	CodeShardingRequired  = "sharding_required"
	CodeInvalidAPIVersion = "invalid_api_version"
	CodeIdentifyBudget    = "identify_budget_exhausted"
)

// tokenHint tells the operator how to fix a rejected token.
const tokenHint = "check the token (DISCORD_TOKEN); if it was reset or leaked, " +
	"make a new one in the Discord Developer Portal under Bot → Reset Token and restart the platform"

// tokenRejected is the fatal error for a token Discord refused, where says
// how we found out ("REST 401", "close 4004").
func tokenRejected(where string) *shared.FatalError {
	return kit.Unauthorized(fmt.Sprintf("Discord rejected the bot token (%s)", where), tokenHint)
}

// fatalCloseCode returns the fatal error for a gateway close code that no
// reconnect can fix, or nil for a code worth reconnecting after.
// See https://discord.com/developers/docs/topics/opcodes-and-status-codes#gateway-gateway-close-event-codes.
func fatalCloseCode(code int) *shared.FatalError {
	switch code {
	case 4004:
		return tokenRejected("close 4004")
	case 4010:
		return kit.Fatal(CodeInvalidShard, "Discord refused the shard settings (close 4010)",
			"this plugin runs one unsharded connection; report a bug")
	case 4011:
		return kit.Fatal(CodeShardingRequired, "Discord requires sharding for this bot (close 4011)",
			"the bot is in too many guilds for one connection; this plugin does not shard yet")
	case 4012:
		return kit.Fatal(CodeInvalidAPIVersion, "Discord refused the gateway API version (close 4012)",
			"check api_url: its /vN path sets the gateway version; leave it unset for "+DefaultAPIURL)
	case 4013:
		return kit.Fatal(CodeInvalidIntents, "Discord refused the gateway intents (close 4013)",
			"report a bug: the plugin sent an invalid intents value")
	case 4014:
		return kit.Fatal(CodeDisallowedIntents, "Discord refused the Message Content intent (close 4014)",
			"enable it in the Discord Developer Portal: your application → Bot → "+
				"Privileged Gateway Intents → Message Content Intent, then restart the platform")
	}
	return nil
}

// closeCode returns the close code carried by err, if the gateway closed
// the connection with a close frame.
func closeCode(err error) (int, bool) {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code, true
	}
	return 0, false
}

// isUnauthorized reports whether err is a REST 401: the token is gone.
func isUnauthorized(err error) bool {
	var re *discordgo.RESTError
	return errors.As(err, &re) && re.Response != nil && re.Response.StatusCode == http.StatusUnauthorized
}

// restStatus returns the HTTP status of a REST error, or 0.
func restStatus(err error) int {
	var re *discordgo.RESTError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.StatusCode
	}
	return 0
}
