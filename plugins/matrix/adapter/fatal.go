package adapter

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"maunium.net/go/mautrix"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// tokenHint tells the operator how to fix a rejected token.
const tokenHint = "check the access token (MATRIX_TOKEN): log the bot account in again " +
	"(see plugins/matrix/README.md) and restart the platform"

func invalidConfig(msg, hint string) *shared.FatalError {
	return kit.InvalidConfig("matrix: "+msg, hint)
}

// tokenRejected is the fatal error for a token the homeserver refused; where
// says which call found out and errcode what the homeserver said.
func tokenRejected(where, errcode string) *shared.FatalError {
	return kit.Unauthorized(fmt.Sprintf("the Matrix homeserver rejected the access token (%s: %s)", where, errcode), tokenHint)
}

// classified is what a failed homeserver call said: its HTTP status, its
// Matrix errcode ("" when the body had none) and the error itself.
type classified struct {
	status  int
	errcode string
	resp    *mautrix.RespError
	http    *mautrix.HTTPError
}

func classify(err error) classified {
	var c classified
	var he mautrix.HTTPError
	if errors.As(err, &he) {
		c.http = &he
		if he.Response != nil {
			c.status = he.Response.StatusCode
		}
		c.resp = he.RespError
	}
	if c.resp == nil {
		var re mautrix.RespError
		if errors.As(err, &re) {
			c.resp = &re
		}
	}
	if c.resp != nil {
		c.errcode = c.resp.ErrCode
		if c.status == 0 {
			c.status = c.resp.StatusCode
		}
	}
	return c
}

// rejectedToken returns the fatal error when err says the token is gone:
// unknown, missing, or its user deactivated (or any 401). Everything else is
// transient.
func rejectedToken(where string, err error) *shared.FatalError {
	c := classify(err)
	switch {
	case c.errcode == "M_UNKNOWN_TOKEN", c.errcode == "M_MISSING_TOKEN", c.errcode == "M_USER_DEACTIVATED":
		return tokenRejected(where, c.errcode)
	case c.status == http.StatusUnauthorized:
		return tokenRejected(where, "HTTP 401")
	}
	return nil
}

// rateLimited returns how long the homeserver asked us to wait
// (M_LIMIT_EXCEEDED's retry_after_ms, else the Retry-After header, else a
// second), and whether err was a rate limit at all.
func rateLimited(err error) (time.Duration, bool) {
	c := classify(err)
	if c.errcode != "M_LIMIT_EXCEEDED" && c.status != http.StatusTooManyRequests {
		return 0, false
	}
	if c.resp != nil {
		if ms, ok := c.resp.ExtraData["retry_after_ms"].(float64); ok && ms > 0 {
			return time.Duration(ms) * time.Millisecond, true
		}
	}
	if c.http != nil && c.http.Response != nil {
		if secs, perr := strconv.Atoi(c.http.Response.Header.Get("Retry-After")); perr == nil && secs > 0 {
			return time.Duration(secs) * time.Second, true
		}
	}
	return time.Second, true
}
