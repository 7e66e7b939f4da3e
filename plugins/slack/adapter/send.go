package adapter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/slack-go/slack"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// maxMessageLength is where replies are split: Slack truncates message text
// past 40,000 characters and recommends at most 4,000.
const maxMessageLength = 4000

// Send posts a reply in the conversation it answers, split into parts of at
// most 4,000 characters (kit.Chunk, code fences kept balanced), every part
// in the reply's thread when it has one. Posts go through the channel's rate
// budget, which waits out a 429's Retry-After for that channel only. It
// returns the ts of each posted part.
func (a *Adapter) Send(ctx context.Context, r shared.Reply) ([]string, error) {
	_, api, rate, err := a.clients()
	if err != nil {
		return nil, err
	}
	if r.ConversationID == "" {
		return nil, errors.New("slack send: reply has no conversation id")
	}
	if r.ThreadID != "" {
		// Replies in this thread are meant for the bot, mention or not:
		// from before the answer is posted, since a follow-up can arrive
		// before chat.postMessage's response does.
		a.threads.add(threadKey(r.ConversationID, r.ThreadID))
	}
	parts := kit.Chunk(r.Text, maxMessageLength, kit.CodePoints)
	ids := make([]string, 0, len(parts))
	for i, part := range parts {
		// Escaped, so the agent cannot ping @channel or users by writing
		// <!channel> or <@U…>.
		opts := []slack.MsgOption{slack.MsgOptionText(part, true)}
		if r.ThreadID != "" {
			opts = append(opts, slack.MsgOptionTS(r.ThreadID))
		}
		var ts string
		err := rate.Do(ctx, r.ConversationID, kit.Final, func(ctx context.Context) error {
			if _, _, err := a.client(); err != nil {
				return err // the plugin failed meanwhile: no more requests
			}
			var err error
			_, ts, err = api.PostMessageContext(ctx, r.ConversationID, opts...)
			if d, limited := retryAfter(err); limited {
				return a.rateLimited(ctx, rate, r.ConversationID, d, err)
			}
			return err
		})
		if err != nil {
			if fe := kit.AsFatal(err); fe != nil {
				return ids, fe
			}
			if fe := fatalAPIError(err, botToken, "chat.postMessage"); fe != nil {
				return ids, a.fail(fe)
			}
			return ids, sendFailed(ctx, err, i, len(parts), r.ConversationID)
		}
		ids = append(ids, ts)
	}
	return ids, nil
}

// rateLimited handles a 429 on channel: a *kit.RetryAfterError, which the
// budget waits out, or, when the wait would outlast ctx, a
// *shared.DeliveryError at once (the wait is still recorded for the channel).
func (a *Adapter) rateLimited(ctx context.Context, rate *kit.Budget, channel string, d time.Duration, err error) error {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		rate.RetryAfter(channel, d)
		a.log.Warn("rate limited by Slack: giving up, the reply cannot wait that long", "channel", channel, "retry_after", d)
		return &shared.DeliveryError{Reason: shared.DeliveryRateLimited, RetryAfter: d, Err: err,
			Message: fmt.Sprintf("rate limited by Slack in channel %s for %s", channel, d)}
	}
	a.log.Info("rate limited by Slack: waiting", "channel", channel, "retry_after", d)
	return &kit.RetryAfterError{After: d, Err: err}
}

// Web API errors of chat.postMessage, by what the host should make of them.
var (
	notFoundErrors  = map[string]bool{"channel_not_found": true, "thread_not_found": true, "message_not_found": true}
	forbiddenErrors = map[string]bool{"not_in_channel": true, "is_archived": true, "restricted_action": true,
		"restricted_action_read_only_channel": true, "restricted_action_thread_only_channel": true,
		"restricted_action_non_threadable_channel": true, "missing_scope": true, "team_access_not_granted": true,
		"cannot_reply_to_message": true, "access_denied": true, "no_permission": true}
	tooLargeErrors    = map[string]bool{"msg_too_long": true, "msg_blocks_too_long": true}
	unavailableErrors = map[string]bool{"internal_error": true, "fatal_error": true, "service_unavailable": true,
		"request_timeout": true}
)

// sendFailed classifies a failed post of part (0-based) of parts in
// channel, for the host to report.
func sendFailed(ctx context.Context, err error, part, parts int, channel string) error {
	var de *shared.DeliveryError
	switch {
	case errors.As(err, &de):
	case ctx.Err() != nil:
		return fmt.Errorf("posting part %d/%d of a reply in channel %s: %w", part+1, parts, channel, ctx.Err())
	default:
		de = classifySendError(err, part, channel)
	}
	de.Posted = part
	if parts > 1 {
		de.Message = fmt.Sprintf("%s (posted %d of %d parts)", de.Message, part, parts)
	}
	return de
}

func classifySendError(err error, part int, channel string) *shared.DeliveryError {
	de := &shared.DeliveryError{Err: err}
	var se slack.SlackErrorResponse
	var sc slack.StatusCodeError
	var ra *kit.RetryAfterError
	switch {
	case errors.As(err, &ra):
		de.Reason, de.RetryAfter = shared.DeliveryRateLimited, ra.After
		de.Message = fmt.Sprintf("Slack kept rate limiting the reply in channel %s (retry after %s)", channel, ra.After)
	case errors.As(err, &se) && notFoundErrors[se.Err]:
		de.Reason = shared.DeliveryNotFound
		de.Message = fmt.Sprintf("Slack has no channel or thread to post the reply in (%s, channel %s): it was deleted, or the bot cannot see it", se.Err, channel)
	case errors.As(err, &se) && forbiddenErrors[se.Err]:
		de.Reason = shared.DeliveryForbidden
		de.Message = fmt.Sprintf("Slack refused the reply in channel %s (%s): invite the bot to the channel (/invite @bot) and check its chat:write scope", channel, se.Err)
	case errors.As(err, &se) && tooLargeErrors[se.Err]:
		de.Reason = shared.DeliveryTooLarge
		de.Message = fmt.Sprintf("Slack refused part %d of the reply as too large (%s)", part+1, se.Err)
	case errors.As(err, &se) && unavailableErrors[se.Err]:
		de.Reason = shared.DeliveryUnavailable
		de.Message = fmt.Sprintf("Slack failed posting the reply (%s); try again later", se.Err)
	case errors.As(err, &se):
		de.Reason = shared.DeliveryRejected
		de.Message = fmt.Sprintf("Slack refused the reply in channel %s (%s)", channel, se.Err)
	case errors.As(err, &sc) && sc.Code >= http.StatusInternalServerError:
		de.Reason = shared.DeliveryUnavailable
		de.Message = fmt.Sprintf("Slack failed posting the reply (HTTP %d); try again later", sc.Code)
	case errors.As(err, &sc):
		de.Reason = shared.DeliveryRejected
		de.Message = fmt.Sprintf("Slack refused the reply in channel %s (HTTP %d)", channel, sc.Code)
	default:
		de.Reason = shared.DeliveryUnavailable
		de.Message = fmt.Sprintf("could not reach Slack to post the reply: %v", err)
	}
	return de
}
