package router

import (
	"context"
	"strconv"

	"github.com/plughost/gateway/shared"
)

// stream is one reply streamed to a platform that shows partial replies.
// The first piece of text opens it (PhaseStart, then deltas, sent as they
// come, outside the delivery queue); the turn's delivery closes it, through
// the platform's delivery queue like any reply, with the whole reply
// (PhaseEnd) or, when it ended early, with why (PhaseFail). Only the final
// text is ever recorded in the transcript. A reply that never produced text
// is delivered whole, as to any platform.
type stream struct {
	r       *Router
	j       *job
	id      string
	started bool
}

func (r *Router) newStream(j *job) *stream {
	return &stream{r: r, j: j, id: r.replyIDBase + "-" + strconv.FormatUint(r.replyIDs.Add(1), 36)}
}

func (s *stream) part(phase shared.ReplyPhase, text string, kind shared.ReplyKind) shared.ReplyPart {
	return shared.ReplyPart{ReplyID: s.id, Phase: phase, Reply: shared.Reply{
		ConversationID: s.j.msg.ConversationID,
		ThreadID:       s.j.msg.ThreadID,
		ReplyToID:      s.j.msg.ID,
		Text:           text,
		Kind:           kind,
	}}
}

// delta forwards a piece of text as the provider produced it. It is called
// on the turn's goroutine and only queues the part: it never waits for the
// platform.
func (s *stream) delta(text string) {
	if text == "" {
		return
	}
	ctx := context.Background()
	if !s.started {
		s.started = true
		if _, err := s.r.streamSender.SendPart(ctx, s.j.platform, s.part(shared.PhaseStart, "", shared.KindReply)); err != nil {
			s.r.logger.Debug("could not start a streamed reply", "platform", s.j.platform, "error", err)
		}
	}
	if _, err := s.r.streamSender.SendPart(ctx, s.j.platform, s.part(shared.PhaseDelta, text, shared.KindReply)); err != nil {
		s.r.logger.Debug("could not stream a reply part", "platform", s.j.platform, "error", err)
	}
}
