package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// Streamed replies on Discord: the first text is posted as soon as it
// arrives, then the message is edited in place as the reply grows, at most
// once per edit_interval. Every post and edit goes through the channel's
// budget (kit.Budget, shared with typing): interim edits are Interim and are
// skipped when the budget is spent or Discord asked to wait (a 429 on an
// interim edit is recorded in the budget, not retried); the final edit is
// Final, waits for the budget and retries a 429 after its retry-after, and
// is never skipped. Past 2000 characters the reply continues in a new
// message. The final text replaces whatever was shown, so skipped interim
// edits cost nothing and the final message is never posted twice.

// defaultEditInterval is edit_interval's default: Discord allows about five
// message writes per five seconds per channel; one edit a second leaves room
// for the other replies and the typing indicator in that channel.
const defaultEditInterval = time.Second

var _ shared.Streamer = (*Adapter)(nil)

// liveReply is a reply being streamed: the messages posted for it and what
// each shows.
type liveReply struct {
	channel  string
	replyTo  string
	text     strings.Builder
	ids      []string // posted messages, in order
	shown    []string // their content
	lastEdit time.Time
}

// liveReplies maps reply ids to replies being streamed.
type liveReplies struct {
	mu sync.Mutex
	m  map[string]*liveReply
}

func (l *liveReplies) get(id string) *liveReply {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[id]
}

func (l *liveReplies) put(id string, r *liveReply) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*liveReply{}
	}
	l.m[id] = r
}

func (l *liveReplies) remove(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, id)
}

// now is the adapter's clock (tests set tune.now).
func (a *Adapter) now() time.Time {
	if a.tune.now != nil {
		return a.tune.now()
	}
	return time.Now()
}

// Streams implements shared.Streamer: stream_replies.
func (a *Adapter) Streams() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg.streamReplies
}

// SendPart implements shared.Streamer.
func (a *Adapter) SendPart(ctx context.Context, p shared.ReplyPart) ([]string, error) {
	channel := p.Reply.ThreadID
	if channel == "" {
		channel = p.Reply.ConversationID
	}
	switch p.Phase {
	case shared.PhaseStart:
		if channel == "" {
			return nil, errors.New("discord stream: reply has no conversation id")
		}
		a.live.put(p.ReplyID, &liveReply{channel: channel, replyTo: p.Reply.ReplyToID})
		return nil, nil
	case shared.PhaseDelta:
		lr := a.live.get(p.ReplyID)
		if lr == nil {
			return nil, nil // started before this plugin process: End posts it whole
		}
		lr.text.WriteString(p.Reply.Text)
		s, _, _, err := a.configured()
		if err != nil {
			return nil, err
		}
		now := a.now()
		if now.Sub(lr.lastEdit) < s.editInterval {
			return nil, nil
		}
		lr.lastEdit = now
		return nil, a.render(ctx, lr, lr.text.String(), kit.Interim)
	default:
		lr := a.live.get(p.ReplyID)
		a.live.remove(p.ReplyID)
		text := p.Reply.Text
		if p.Phase == shared.PhaseFail && lr != nil && lr.text.Len() > 0 {
			// Keep what was streamed and say why it ended.
			text = lr.text.String() + "\n\n*" + p.Reply.Text + "*"
		}
		if lr == nil || len(lr.ids) == 0 {
			// Nothing shown yet (or the reply began before this plugin
			// process started): post it whole.
			r := p.Reply
			r.Text = text
			return a.Send(ctx, r)
		}
		err := a.render(ctx, lr, text, kit.Final)
		a.typing.forget(lr.channel)
		return lr.ids, err
	}
}

// render makes the reply's messages show text: it edits the ones posted
// whose content differs and posts the parts beyond them. An Interim render
// stops at the first call the budget skips; a Final one makes every call.
func (a *Adapter) render(ctx context.Context, lr *liveReply, text string, kind kit.Kind) error {
	s, rest, rate, err := a.configured()
	if err != nil {
		return err
	}
	if strings.TrimSpace(text) == "" {
		return nil // Discord refuses an empty message
	}
	chunks := kit.Chunk(text, maxMessageLength, kit.CodePoints)
	for i, chunk := range chunks {
		if i < len(lr.ids) && lr.shown[i] == chunk {
			continue
		}
		var call func(context.Context) error
		if i < len(lr.ids) {
			id := lr.ids[i]
			call = func(ctx context.Context) error {
				edit := &discordgo.MessageEdit{ID: id, Channel: lr.channel, Content: &chunk, AllowedMentions: allowedMentions()}
				if kind == kit.Final {
					// Waits for the bucket and a 429's retry_after, with ctx.
					body, err := json.Marshal(edit)
					if err != nil {
						return err
					}
					_, err = a.restRequest(ctx, rest, http.MethodPatch, discordgo.EndpointChannelMessage(lr.channel, id), body)
					return err
				}
				_, err := rest.ChannelMessageEditComplex(edit, discordgo.WithContext(ctx), discordgo.WithRetryOnRatelimit(false))
				return err
			}
		} else {
			ms := &discordgo.MessageSend{Content: chunk, AllowedMentions: allowedMentions()}
			if i == 0 && s.replyToMessage && lr.replyTo != "" {
				failIfGone := false
				ms.Reference = &discordgo.MessageReference{MessageID: lr.replyTo, ChannelID: lr.channel, FailIfNotExists: &failIfGone}
			}
			call = func(ctx context.Context) error {
				var m *discordgo.Message
				var err error
				if kind == kit.Final {
					m, err = a.postMessage(ctx, rest, lr.channel, ms)
				} else {
					m, err = rest.ChannelMessageSendComplex(lr.channel, ms, discordgo.WithContext(ctx), discordgo.WithRetryOnRatelimit(false))
				}
				if err == nil {
					lr.ids = append(lr.ids, m.ID)
					lr.shown = append(lr.shown, "")
				}
				return err
			}
		}
		err := rate.Do(ctx, lr.channel, kind, func(ctx context.Context) error {
			return retryAfter(call(ctx))
		})
		if errors.Is(err, kit.ErrSkipped) {
			return nil // the next edit, or the final one, shows it
		}
		if err != nil {
			if isUnauthorized(err) {
				return a.fail(tokenRejected("REST 401 while streaming a reply"))
			}
			return fmt.Errorf("streaming a reply in channel %s (part %d/%d): %w", lr.channel, i+1, len(chunks), err)
		}
		lr.shown[i] = chunk
	}
	if kind == kit.Final {
		// The final text needs fewer messages than were shown (rare: a
		// chunk boundary moved): remove the extra ones.
		for len(lr.ids) > len(chunks) {
			last := len(lr.ids) - 1
			if err := rate.Wait(ctx, lr.channel, kit.Final); err != nil {
				return err
			}
			if err := rest.ChannelMessageDelete(lr.channel, lr.ids[last], discordgo.WithContext(ctx)); err != nil {
				return fmt.Errorf("removing a part of a streamed reply in channel %s: %w", lr.channel, err)
			}
			lr.ids, lr.shown = lr.ids[:last], lr.shown[:last]
		}
	}
	return nil
}

// retryAfter turns discordgo's 429 (returned when it is told not to retry)
// into the toolkit's RetryAfterError, so the budget honours it.
func retryAfter(err error) error {
	var rl *discordgo.RateLimitError
	if errors.As(err, &rl) && rl.RateLimit != nil && rl.TooManyRequests != nil {
		return &kit.RetryAfterError{After: rl.RetryAfter, Err: err}
	}
	return err
}
