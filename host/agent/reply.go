package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/shared"
)

// errRetiredProvider: a reload replaced the provider while a reply was
// resolving it; the reply resolves again.
var errRetiredProvider = errors.New("provider replaced by a reload")

// turn is one reply being produced.
type turn struct {
	key   string
	text  string
	epoch uint64
	spec  spec
	agent *Agent
	req   *provider.Request
	asked time.Time
	// trusted says the turn started from its agent's cached session at
	// version ver, so that its commit can extend that copy.
	trusted bool
	ver     uint64
}

// TurnID names a committed turn, for MarkUndelivered.
type TurnID struct {
	Epoch uint64
	Asked time.Time
}

// Answer is a committed turn's reply.
type Answer struct {
	Text string
	Turn TurnID
	// Usage is the token usage the provider reported; zero when none.
	Usage provider.Usage
}

// Reply is Answer's text.
func (s *Service) Reply(ctx context.Context, key, text string) (string, error) {
	a, err := s.Answer(ctx, key, text)
	return a.Text, err
}

// Answer produces the agent's reply to text in session key: it gets (or
// builds) the session's agent from the cache marked in use, with the session
// (the agent's cached copy, or loaded from the store), sends system prompt +
// the last history_limit messages + text to the provider, commits the turn
// durably, and only then returns the reply, with the turn's id.
// Failures meant for the user are *UserError; a cancelled ctx returns ctx's
// error (context.Canceled for /stop).
func (s *Service) Answer(ctx context.Context, key, text string) (Answer, error) {
	t, err := s.begin(key, text)
	if err != nil {
		return Answer{}, err
	}
	resp, err := t.agent.client.Complete(ctx, t.req)
	s.cache.release(t.agent)
	if err != nil {
		s.cache.endTurn(t.key, t.agent, t.trusted, t.ver, turnNoWrite)
		return Answer{}, s.failed(ctx, t, err)
	}
	content := s.capReply(t, resp.Content)
	if err := s.commit(ctx, t, content, resp.Turns...); err != nil {
		return Answer{}, err
	}
	s.usage(ctx, key, resp.Usage)
	return Answer{Text: content, Turn: TurnID{Epoch: t.epoch, Asked: t.asked}, Usage: resp.Usage}, nil
}

// capReply applies max_reply_bytes to a turn's reply, saying so in the log.
func (s *Service) capReply(t *turn, reply string) string {
	limit := s.maxReplyBytes()
	out, cut := capReply(reply, limit)
	if cut {
		s.log.Warn("reply cut at max_reply_bytes", "session", shared.LogValue(t.key), "model", t.spec.model,
			"bytes", len(reply), "max_reply_bytes", limit)
	}
	return out
}

// MarkUndelivered marks a committed turn whose reply never reached the user:
// it is kept in the transcript but left out of the history the model is
// sent from now on. The session's cached copy is dropped (the next turn
// reads the store).
func (s *Service) MarkUndelivered(ctx context.Context, key string, turn TurnID) error {
	s.cache.beginWrite(key)
	err := s.store.MarkUndelivered(ctx, key, turn.Epoch, turn.Asked)
	s.endWrite(key, "", err)
	if err != nil {
		return fmt.Errorf("mark turn of session %q undelivered: %w", key, err)
	}
	return nil
}

// StoreHealth is the session store's write health, for status and readiness.
func (s *Service) StoreHealth() store.Health { return s.store.Health() }

// ReplyStream is AnswerStream's text.
func (s *Service) ReplyStream(ctx context.Context, key, text string, onDelta func(string)) (string, error) {
	a, err := s.AnswerStream(ctx, key, text, onDelta)
	return a.Text, err
}

// AnswerStream is Answer for platforms that show partial replies: onDelta
// is called with each piece of text as the provider streams it. The whole
// reply is committed, then returned, exactly as with Answer; a reply that
// fails midway is not recorded.
func (s *Service) AnswerStream(ctx context.Context, key, text string, onDelta func(string)) (Answer, error) {
	t, err := s.begin(key, text)
	if err != nil {
		return Answer{}, err
	}
	content, turns, usage, err := t.produce(ctx, s.maxReplyBytes(), onDelta)
	s.cache.release(t.agent)
	if err != nil {
		s.cache.endTurn(t.key, t.agent, t.trusted, t.ver, turnNoWrite)
		return Answer{}, s.failed(ctx, t, err)
	}
	content = s.capReply(t, content)
	if err := s.commit(ctx, t, content, turns...); err != nil {
		return Answer{}, err
	}
	s.usage(ctx, key, usage)
	return Answer{Text: content, Turn: TurnID{Epoch: t.epoch, Asked: t.asked}, Usage: usage}, nil
}

// usage hands a committed turn's token usage to Options.OnUsage.
func (s *Service) usage(ctx context.Context, key string, u provider.Usage) {
	if s.opts.OnUsage != nil {
		s.opts.OnUsage(context.WithoutCancel(ctx), key, u)
	}
}

// stream reads the provider's stream until it ends or holds more than limit
// bytes (the rest would be cut anyway), with the usage the provider
// reported at its end (none when it was cut short).
func (t *turn) stream(ctx context.Context, limit int, onDelta func(string)) (string, provider.Usage, error) {
	var usage provider.Usage
	st, err := t.agent.client.Stream(ctx, t.req)
	if err != nil {
		return "", usage, err
	}
	defer st.Close()
	var b strings.Builder
	for {
		c, err := st.Recv()
		if err == io.EOF {
			return b.String(), usage, nil
		}
		if err != nil {
			return "", usage, err
		}
		if c.Usage != nil {
			usage = *c.Usage
		}
		if c.Delta != "" {
			b.WriteString(c.Delta)
			if onDelta != nil {
				onDelta(c.Delta)
			}
			if b.Len() > limit {
				return b.String(), usage, nil
			}
		}
	}
}

// begin starts a turn: it acquires the session's agent (marked in use: the
// caller must release it) and the session, from the agent's cached copy when
// it can be trusted, else from the store. The caller must end the turn with
// cache.endTurn (commit does).
func (s *Service) begin(key, text string) (*turn, error) {
	if key == "" {
		return nil, errors.New("reply: empty session key")
	}
	a, sess, ver, finished, hit, err := s.cache.startTurn(key)
	if err != nil {
		return nil, err
	}
	if hit && s.opts.SharedStore {
		// Another host may have answered this session since: the store,
		// not the cached copy, has its history.
		s.cache.release(a)
		hit = false
	}
	if hit {
		want, err := s.specFor(key, s.effectiveModel(key, sess.model))
		if err != nil {
			s.cache.release(a)
			s.cache.endTurn(key, a, true, ver, turnNoWrite)
			return nil, err
		}
		if a.spec == want {
			return s.newTurn(key, text, a, want, sess, true, ver), nil
		}
		// The configuration changed under the cached agent: load the
		// session as on a miss; acquire evicts the stale agent.
		s.cache.release(a)
	}
	t, err := s.load(key, text, finished)
	if err != nil {
		s.cache.endTurn(key, nil, false, 0, turnNoWrite)
		return nil, err
	}
	return t, nil
}

// load is begin on a cache miss: it reads the session from the store,
// acquires (or builds) the agent and caches the session on it.
func (s *Service) load(key, text string, finished uint64) (*turn, error) {
	for attempt := 0; ; attempt++ {
		limit := s.historyLimit(key)
		stored, history, err := s.store.History(key, limit)
		if err != nil {
			if errors.Is(err, store.ErrClosed) {
				return nil, ErrClosed
			}
			return nil, fmt.Errorf("reply: load session %s: %w", shared.LogValue(key), err)
		}
		if s.loaded != nil {
			s.loaded(key)
		}
		want, err := s.specFor(key, s.effectiveModel(key, stored.Model))
		if err != nil {
			return nil, err
		}
		a, err := s.cache.acquire(key, want, ReasonReload, func() (*Agent, error) {
			if !want.ref.hold() {
				return nil, errRetiredProvider
			}
			return &Agent{key: key, spec: want, ref: want.ref, client: provider.NewClient(want.ref.p)}, nil
		})
		if errors.Is(err, errRetiredProvider) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(history) > want.historyLimit {
			history = history[len(history)-want.historyLimit:]
		}
		sess := sessionCopy{epoch: stored.Epoch, model: stored.Model, tail: make([]provider.Message, len(history))}
		for i, m := range history {
			sess.tail[i] = fromStore(m)
		}
		sess.tail = trimOrphans(sess.tail)
		var ver uint64
		trusted := false
		// A tail read with a smaller limit than the agent's may be short.
		if limit >= want.historyLimit {
			ver, trusted = s.cache.install(a, sess, finished)
		}
		return s.newTurn(key, text, a, want, sess, trusted, ver), nil
	}
}

// newTurn builds the provider request of a turn from its session.
func (s *Service) newTurn(key, text string, a *Agent, want spec, sess sessionCopy, trusted bool, ver uint64) *turn {
	req := &provider.Request{Model: want.remoteModel, Messages: make([]provider.Message, 0, len(sess.tail)+2)}
	if want.systemPrompt != "" {
		req.Messages = append(req.Messages, provider.Message{Role: provider.RoleSystem, Content: want.systemPrompt})
	}
	req.Messages = append(req.Messages, sess.tail...)
	req.Messages = append(req.Messages, provider.Message{Role: provider.RoleUser, Content: text})
	t := &turn{key: key, text: text, epoch: sess.epoch, spec: want, agent: a, req: req, asked: s.now(), trusted: trusted, ver: ver}
	s.addTools(t)
	return t
}

// failed classifies a provider failure: the caller's cancellation as is,
// anything else counted and worded for the user.
func (s *Service) failed(ctx context.Context, t *turn, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.errs.inc(t.spec.ref.conf.Name, provider.KindOf(err))
	s.log.Debug("reply failed", "session", shared.LogValue(t.key), "model", t.spec.model, "error", err)
	return userError(t.spec.remoteModel, err)
}

// commit makes the turn durable before the reply is handed back, so that a
// crash after the reply loses nothing. A /stop arriving now must not lose a reply the provider already gave,
// so the commit ignores ctx's cancellation. The epoch read at the start
// sends a turn that raced a /new to the archive it belongs to.
//
// commit ends the turn: a committed turn is appended to the agent's cached
// copy of the session, a failed commit drops that copy.
func (s *Service) commit(ctx context.Context, t *turn, reply string, turns ...provider.Message) error {
	rest, err := toStore(turns, func() store.Message { return store.Message{Time: s.now()} })
	if err == nil {
		rest = append(rest, store.Message{Role: string(provider.RoleAssistant), Content: reply, Time: s.now()})
		err = s.store.AppendTurn(context.WithoutCancel(ctx), t.key, t.epoch,
			store.Message{Role: string(provider.RoleUser), Content: t.text, Time: t.asked}, rest...)
	}
	if err != nil {
		s.cache.endTurn(t.key, t.agent, t.trusted, t.ver, turnUnknown)
	} else {
		msgs := make([]provider.Message, 0, len(turns)+2)
		msgs = append(msgs, provider.Message{Role: provider.RoleUser, Content: t.text})
		msgs = append(msgs, turns...)
		msgs = append(msgs, provider.Message{Role: provider.RoleAssistant, Content: reply})
		s.cache.endTurn(t.key, t.agent, t.trusted, t.ver, turnCommitted, msgs...)
	}
	if errors.Is(err, store.ErrClosed) {
		return ErrClosed
	}
	if err != nil {
		return fmt.Errorf("reply: record turn of session %s: %w", shared.LogValue(t.key), err)
	}
	return nil
}
