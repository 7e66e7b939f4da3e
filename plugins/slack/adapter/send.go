package adapter

import (
	"context"
	"errors"
	"fmt"

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
				a.log.Warn("Slack rate limit on chat.postMessage; waiting", "channel", r.ConversationID, "retry_after", d)
				return &kit.RetryAfterError{After: d, Err: err}
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
			return ids, fmt.Errorf("posting part %d/%d of a reply in channel %s: %w", i+1, len(parts), r.ConversationID, err)
		}
		ids = append(ids, ts)
	}
	if r.ThreadID != "" {
		// Replies in this thread are meant for the bot, mention or not.
		a.threads.add(threadKey(r.ConversationID, r.ThreadID))
	}
	return ids, nil
}
