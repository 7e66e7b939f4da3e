package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/router"
	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/shared"
)

// TurnOptions change one turn (an OpenAI-compatible request's model, or a
// request that names no session); the zero value is an ordinary turn.
type TurnOptions struct {
	// Model, when set, is the PROVIDER/MODEL of this turn only: the same
	// rule as /model, but the session keeps its own model. An invalid one
	// is a *UserError whose ReplyCode is shared.CodeModelNotFound.
	Model string
	// Stateless: History, then the turn's text, is the whole conversation.
	// Nothing is read from or written to the session store and no session
	// (nor its cached agent) is touched; the key only picks the agent (its
	// platform's route).
	Stateless bool
	History   []provider.Message
	// OnDelta, when set, is called with each piece of text as the provider
	// streams it.
	OnDelta func(string)
}

// AnswerWith is Answer (or, with opts.OnDelta, ReplyStream) for a turn with
// options. A turn on another model than the session's, and a stateless one,
// run on an agent of their own, outside the cache, closed when the turn
// ends: the session's cached agent is neither used nor evicted. A stateless
// turn's Answer has a zero Turn (nothing was recorded).
func (s *Service) AnswerWith(ctx context.Context, key, text string, opts TurnOptions) (Answer, error) {
	if opts.Model != "" {
		if err := s.checkTurnModel(opts.Model); err != nil {
			return Answer{}, err
		}
	}
	if opts.Stateless {
		return s.answerStateless(ctx, key, text, opts)
	}
	if opts.Model == "" || opts.Model == s.sessionModel(key) {
		if opts.OnDelta == nil {
			return s.Answer(ctx, key, text)
		}
		return s.AnswerStream(ctx, key, text, opts.OnDelta)
	}
	return s.answerOnModel(ctx, key, text, opts)
}

// sessionModel is the session's effective model, or "" when the store
// cannot say (the turn then takes the one-off path, which reads it again).
func (s *Service) sessionModel(key string) string {
	m, err := s.Model(key)
	if err != nil {
		return ""
	}
	return m
}

// checkTurnModel applies /model's rule to a turn's model: PROVIDER/MODEL
// with a configured provider. Its error is a *UserError coded
// shared.CodeModelNotFound.
func (s *Service) checkTurnModel(model string) error {
	prov, _, err := splitModel(model)
	if err != nil {
		return &UserError{Message: fmt.Sprintf("the model %s (and not gateway, the configured default)", err), Err: err,
			Code: shared.CodeModelNotFound}
	}
	s.mu.RLock()
	_, ok := s.providers[prov]
	names := s.modelsLocked()
	s.mu.RUnlock()
	if !ok {
		return &UserError{Message: fmt.Sprintf("the model %q needs provider %q, which is not configured (providers: %s)",
			model, prov, strings.Join(names, ", ")), Code: shared.CodeModelNotFound}
	}
	return nil
}

// answerOnModel runs one turn of a stored session on another model than
// the session's: the history comes from the store, the turn is committed
// to it as any other, and the session's cached copy (if any) is dropped
// by the commit, since it did not take part.
func (s *Service) answerOnModel(ctx context.Context, key, text string, opts TurnOptions) (Answer, error) {
	a, _, _, _, hit, err := s.cache.startTurn(key)
	if err != nil {
		return Answer{}, err
	}
	if hit {
		s.cache.release(a) // not this turn's agent
	}
	t, err := s.loadOneOff(key, text, opts.Model)
	if err != nil {
		s.cache.endTurn(key, nil, false, 0, turnNoWrite)
		return Answer{}, err
	}
	defer s.endOneOff(t.agent)
	content, turns, usage, err := t.produce(ctx, s.maxReplyBytes(), opts.OnDelta)
	if err != nil {
		s.cache.endTurn(key, t.agent, false, 0, turnNoWrite)
		return Answer{}, s.failed(ctx, t, err)
	}
	content = s.capReply(t, content)
	if err := s.commit(ctx, t, content, turns...); err != nil {
		return Answer{}, err
	}
	s.usage(ctx, key, usage)
	return Answer{Text: content, Turn: TurnID{Epoch: t.epoch, Asked: t.asked}, Usage: usage}, nil
}

// loadOneOff reads the session's history from the store and builds the
// turn on a one-off agent for model.
func (s *Service) loadOneOff(key, text, model string) (*turn, error) {
	want, err := s.specFor(key, model)
	if err != nil {
		return nil, err
	}
	stored, history, err := s.store.History(key, want.historyLimit)
	if err != nil {
		if errors.Is(err, store.ErrClosed) {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("reply: load session %s: %w", shared.LogValue(key), err)
	}
	sess := sessionCopy{epoch: stored.Epoch, model: stored.Model, tail: make([]provider.Message, len(history))}
	for i, m := range history {
		sess.tail[i] = fromStore(m)
	}
	sess.tail = trimOrphans(sess.tail)
	a, err := s.oneOff(key, want)
	if err != nil {
		return nil, err
	}
	return s.newTurn(key, text, a, want, sess, false, 0), nil
}

// answerStateless answers history + text on the key's agent, recording
// nothing.
func (s *Service) answerStateless(ctx context.Context, key, text string, opts TurnOptions) (Answer, error) {
	if key == "" {
		return Answer{}, errors.New("reply: empty session key")
	}
	model := opts.Model
	if model == "" {
		model = s.agentFor(key).model()
	}
	want, err := s.specFor(key, model)
	if err != nil {
		return Answer{}, err
	}
	a, err := s.oneOff(key, want)
	if err != nil {
		return Answer{}, err
	}
	defer s.endOneOff(a)
	t := s.newTurn(key, text, a, want, sessionCopy{tail: opts.History}, false, 0)
	content, _, usage, err := t.produce(ctx, s.maxReplyBytes(), opts.OnDelta)
	if err != nil {
		return Answer{}, s.failed(ctx, t, err)
	}
	content = s.capReply(t, content)
	s.usage(ctx, key, usage)
	return Answer{Text: content, Usage: usage}, nil
}

// oneOff builds an agent outside the cache for one turn; endOneOff closes
// it. Close waits for the one-off agents still running before it closes
// the providers.
func (s *Service) oneOff(key string, want spec) (*Agent, error) {
	for attempt := 0; ; attempt++ {
		s.mu.RLock()
		if s.closed {
			s.mu.RUnlock()
			return nil, ErrClosed
		}
		if want.ref.hold() {
			s.oneOffs.Add(1)
			s.mu.RUnlock()
			a := &Agent{key: key, spec: want, ref: want.ref, client: provider.NewClient(want.ref.p)}
			s.oneOffMu.Lock()
			if s.running == nil {
				s.running = map[*Agent]struct{}{}
			}
			s.running[a] = struct{}{}
			s.oneOffMu.Unlock()
			return a, nil
		}
		s.mu.RUnlock()
		// A reload replaced the provider since the spec was resolved.
		if attempt == 3 {
			return nil, errRetiredProvider
		}
		var err error
		if want, err = s.specFor(key, want.model); err != nil {
			return nil, err
		}
	}
}

// endOneOff closes a one-off agent (its client, then its provider
// reference).
func (s *Service) endOneOff(a *Agent) {
	s.oneOffMu.Lock()
	delete(s.running, a)
	s.oneOffMu.Unlock()
	a.close()
	s.oneOffs.Done()
}

// waitOneOffs waits for the one-off agents in use (no new one starts once
// the service is closed), cancelling their replies when ctx ends.
func (s *Service) waitOneOffs(ctx context.Context) {
	done := make(chan struct{})
	go func() { s.oneOffs.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	s.oneOffMu.Lock()
	for a := range s.running {
		a.client.Cancel()
	}
	s.oneOffMu.Unlock()
	<-done
}

// produce gets the turn's reply from the provider: streamed to onDelta
// when it is set (whole, once, when the agent has tools: the tool loop
// does not stream), else in one piece. It returns the reply, the tool
// rounds before it and the usage the provider reported.
func (t *turn) produce(ctx context.Context, limit int, onDelta func(string)) (string, []provider.Message, provider.Usage, error) {
	if onDelta == nil || t.req.Tools != nil {
		var resp *provider.Response
		var err error
		if onDelta == nil {
			resp, err = t.agent.client.Complete(ctx, t.req)
		} else {
			resp, err = t.completeTools(ctx, onDelta)
		}
		if err != nil {
			return "", nil, provider.Usage{}, err
		}
		return resp.Content, resp.Turns, resp.Usage, nil
	}
	content, usage, err := t.stream(ctx, limit, onDelta)
	return content, nil, usage, err
}

// The router gives a turn's error reply the code of a coded error.
var _ router.ReplyCoder = (*UserError)(nil)
