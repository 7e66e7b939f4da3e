package adapter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/plughost/gateway/shared"
)

// maxMessageLength is where replies are split: Slack truncates message text
// past 40,000 characters and recommends at most 4,000.
const maxMessageLength = 4000

// maxRateLimitWaits bounds how many 429s one part of a reply waits out.
const maxRateLimitWaits = 5

// Send posts a reply in the conversation it answers, split into parts of at
// most 4,000 characters, every part in the reply's thread (when it has
// one). A 429 is waited out (Retry-After) for that channel only. It returns
// the ts of each posted part.
func (a *Adapter) Send(ctx context.Context, r shared.Reply) ([]string, error) {
	_, api, err := a.client()
	if err != nil {
		return nil, err
	}
	if r.ConversationID == "" {
		return nil, errors.New("slack send: reply has no conversation id")
	}
	parts := splitMessage(r.Text, maxMessageLength)
	ids := make([]string, 0, len(parts))
	for i, part := range parts {
		opts := []slack.MsgOption{slack.MsgOptionText(part, true)}
		if r.ThreadID != "" {
			opts = append(opts, slack.MsgOptionTS(r.ThreadID))
		}
		ts, err := a.post(ctx, api, r.ConversationID, opts)
		if err != nil {
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

// post calls chat.postMessage, waiting out 429s: Slack's Retry-After holds
// for the channel, so every send to it waits, and sends to other channels
// do not.
func (a *Adapter) post(ctx context.Context, api *slack.Client, channel string, opts []slack.MsgOption) (string, error) {
	for waits := 0; ; waits++ {
		if err := a.limits.wait(ctx, channel); err != nil {
			return "", err
		}
		if _, _, err := a.client(); err != nil {
			return "", err // the plugin failed meanwhile: no more requests
		}
		_, ts, err := api.PostMessageContext(ctx, channel, opts...)
		d, limited := retryAfter(err)
		if !limited || waits >= maxRateLimitWaits {
			return ts, err
		}
		a.log.Warn("Slack rate limit on chat.postMessage; waiting", "channel", channel, "retry_after", d)
		a.limits.hold(channel, time.Now().Add(d))
	}
}

// sendLimits remembers, per channel, until when Slack asked not to post.
type sendLimits struct {
	mu    sync.Mutex
	until map[string]time.Time
}

func (l *sendLimits) hold(channel string, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.until == nil {
		l.until = map[string]time.Time{}
	}
	now := time.Now()
	for ch, t := range l.until { // keep the map small
		if now.After(t) {
			delete(l.until, ch)
		}
	}
	if until.After(l.until[channel]) {
		l.until[channel] = until
	}
}

func (l *sendLimits) wait(ctx context.Context, channel string) error {
	l.mu.Lock()
	until := l.until[channel]
	l.mu.Unlock()
	if d := time.Until(until); d > 0 && !sleep(ctx, d) {
		return fmt.Errorf("waiting out Slack's rate limit for channel %s: %w", channel, ctx.Err())
	}
	return nil
}

// splitMessage cuts text into parts of at most limit characters, at a line
// break or space where there is one in the last quarter of a part, keeping
// code fences balanced: a part that ends inside a ``` block closes it, and
// the next part opens it again.
func splitMessage(text string, limit int) []string {
	text = strings.TrimSpace(text)
	if text == "" {
		return []string{"(empty reply)"}
	}
	const fence = "```"
	var parts []string
	reopen := ""
	for text != "" {
		budget := limit - len([]rune(reopen))
		inFence := strings.Count(reopen+text, fence)%2 == 1 // only when everything fits
		if utf8.RuneCountInString(text) <= budget && !inFence {
			parts = append(parts, reopen+text)
			break
		}
		budget -= len(fence) + 1 // room to close a fence
		cut := cutPoint(text, budget)
		part := reopen + strings.TrimRight(text[:cut], " \n")
		text = strings.TrimLeft(text[cut:], " \n")
		reopen = ""
		if strings.Count(part, fence)%2 == 1 {
			part += "\n" + fence
			reopen = fence + "\n"
		}
		parts = append(parts, part)
	}
	return parts
}

// cutPoint returns a byte index in text at most budget runes in, preferring
// a newline, then a space, in the last quarter.
func cutPoint(text string, budget int) int {
	end, n := 0, 0
	for i := range text {
		if n == budget {
			end = i
			break
		}
		n++
		end = len(text)
	}
	if end >= len(text) {
		return len(text)
	}
	window := text[:end]
	floor := len(window) * 3 / 4
	if i := strings.LastIndexByte(window, '\n'); i > floor {
		return i + 1
	}
	if i := strings.LastIndexByte(window, ' '); i > floor {
		return i + 1
	}
	return end
}
