package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// Sends and typing go through restRequest rather than discordgo's helpers:
// discordgo's rate limiter sleeps for a bucket's reset, and its 429 retry
// sleeps for retry_after, both holding the bucket's lock and neither
// looking at the context, so a 60 s retry_after held the reply (and every
// later one to that channel) past its deadline. restRequest waits for the
// same buckets (discordgo still learns them from the response headers) with
// the context, and gives up at once, saying so, when the wait would outlast
// the context's deadline.

// postMessage posts one message in channel.
func (a *Adapter) postMessage(ctx context.Context, rest *discordgo.Session, channel string, ms *discordgo.MessageSend) (*discordgo.Message, error) {
	body, err := json.Marshal(ms)
	if err != nil {
		return nil, fmt.Errorf("encoding a message: %w", err)
	}
	raw, err := a.restRequest(ctx, rest, http.MethodPost, discordgo.EndpointChannelMessages(channel), body)
	if err != nil {
		return nil, err
	}
	var m discordgo.Message
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decoding the posted message: %w", err)
	}
	return &m, nil
}

// restRequest makes one REST call in endpoint's rate-limit bucket, waiting
// for the bucket (and for a 429's retry_after) as long as ctx allows.
func (a *Adapter) restRequest(ctx context.Context, rest *discordgo.Session, method, endpoint string, body []byte) ([]byte, error) {
	for {
		b := rest.Ratelimiter.GetBucket(endpoint)
		b.Lock()
		wait := rest.Ratelimiter.GetWaitTime(b, 1)
		if wait <= 0 {
			b.Remaining--
			// RequestWithLockedBucket releases the bucket, updated from the
			// response's rate-limit headers.
			raw, err := rest.RequestWithLockedBucket(method, endpoint, "application/json", body, b, 0,
				discordgo.WithContext(ctx), discordgo.WithRetryOnRatelimit(false))
			var rl *discordgo.RateLimitError
			if !errors.As(err, &rl) {
				return raw, err
			}
			wait = rl.RetryAfter
		} else {
			b.Unlock()
		}
		if err := a.waitRateLimit(ctx, endpoint, wait); err != nil {
			return nil, err
		}
	}
}

// waitRateLimit waits out a rate limit of d on route, or returns a
// *shared.DeliveryError at once when ctx would end first.
func (a *Adapter) waitRateLimit(ctx context.Context, route string, d time.Duration) error {
	secs := max(1, int((d+time.Second-1)/time.Second))
	limited := &shared.DeliveryError{Reason: shared.DeliveryRateLimited, RetryAfter: d,
		Message: fmt.Sprintf("rate limited by Discord for %d s", secs)}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		a.log.Warn(fmt.Sprintf("rate limited by Discord for %d s: giving up, the reply cannot wait that long", secs),
			"route", route, "retry_after", d)
		return limited
	}
	a.log.Info(fmt.Sprintf("rate limited by Discord for %d s: waiting", secs), "route", route, "retry_after", d)
	if err := kit.Sleep(ctx, d); err != nil {
		limited.Err = err
		return limited
	}
	return nil
}

// sendFailed classifies a failed post of part (0-based) of parts in
// channel, for the host to report.
func sendFailed(ctx context.Context, err error, part, parts int, channel string) error {
	var de *shared.DeliveryError
	if errors.As(err, &de) {
		de.Posted = part
		if parts > 1 {
			de.Message = fmt.Sprintf("%s (posted %d of %d parts)", de.Message, part, parts)
		}
		return de
	}
	if ctx.Err() != nil {
		return fmt.Errorf("posting part %d/%d of a reply in channel %s: %w", part+1, parts, channel, ctx.Err())
	}
	de = &shared.DeliveryError{Posted: part, Err: err}
	status, what := restStatus(err), discordMessage(err)
	switch {
	case status == http.StatusForbidden:
		de.Reason = shared.DeliveryForbidden
		de.Message = fmt.Sprintf("Discord refused the reply in channel %s (403%s): give the bot View Channel and Send Messages there (Send Messages in Threads for a thread)", channel, what)
	case status == http.StatusNotFound:
		de.Reason = shared.DeliveryNotFound
		de.Message = fmt.Sprintf("Discord has no channel %s (404%s): it was deleted, or the bot cannot see it", channel, what)
	case status == http.StatusRequestEntityTooLarge:
		de.Reason = shared.DeliveryTooLarge
		de.Message = fmt.Sprintf("Discord refused part %d of the reply as too large (413%s)", part+1, what)
	case status >= 500:
		de.Reason = shared.DeliveryUnavailable
		de.Message = fmt.Sprintf("Discord failed posting the reply (HTTP %d%s); try again later", status, what)
	case status != 0:
		de.Reason = shared.DeliveryRejected
		de.Message = fmt.Sprintf("Discord refused the reply in channel %s (HTTP %d%s)", channel, status, what)
	default:
		de.Reason = shared.DeliveryUnavailable
		de.Message = fmt.Sprintf("could not reach Discord to post the reply: %v", err)
	}
	if parts > 1 {
		de.Message = fmt.Sprintf("%s (posted %d of %d parts)", de.Message, part, parts)
	}
	return de
}

// discordMessage returns ": MESSAGE (code N)" from a REST error's body, or "".
func discordMessage(err error) string {
	var re *discordgo.RESTError
	if !errors.As(err, &re) || re.Message == nil || re.Message.Message == "" {
		return ""
	}
	if re.Message.Code != 0 {
		return fmt.Sprintf(": %s, code %d", re.Message.Message, re.Message.Code)
	}
	return ": " + re.Message.Message
}
