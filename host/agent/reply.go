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
}

// Reply produces the agent's reply to text in session key: it loads the
// session from the store, gets (or builds) the session's agent from the cache
// marked in use, sends system prompt + the last history_limit messages + text
// to the provider, commits the turn durably, and only then returns the reply.
// Failures meant for the user are *UserError; a cancelled ctx returns ctx's
// error (context.Canceled for /stop).
func (s *Service) Reply(ctx context.Context, key, text string) (string, error) {
	t, err := s.begin(key, text)
	if err != nil {
		return "", err
	}
	resp, err := t.agent.client.Complete(ctx, t.req)
	s.cache.release(t.agent)
	if err != nil {
		return "", s.failed(ctx, t, err)
	}
	if err := s.commit(ctx, t, resp.Content); err != nil {
		return "", err
	}
	return resp.Content, nil
}

// ReplyStream is Reply for platforms that show partial replies: onDelta is
// called with each piece of text as the provider streams it. The whole reply
// is committed, then returned, exactly as with Reply; a reply that fails
// midway is not recorded.
func (s *Service) ReplyStream(ctx context.Context, key, text string, onDelta func(string)) (string, error) {
	t, err := s.begin(key, text)
	if err != nil {
		return "", err
	}
	content, err := t.stream(ctx, onDelta)
	s.cache.release(t.agent)
	if err != nil {
		return "", s.failed(ctx, t, err)
	}
	if err := s.commit(ctx, t, content); err != nil {
		return "", err
	}
	return content, nil
}

func (t *turn) stream(ctx context.Context, onDelta func(string)) (string, error) {
	st, err := t.agent.client.Stream(ctx, t.req)
	if err != nil {
		return "", err
	}
	defer st.Close()
	var b strings.Builder
	for {
		c, err := st.Recv()
		if err == io.EOF {
			return b.String(), nil
		}
		if err != nil {
			return "", err
		}
		if c.Delta != "" {
			b.WriteString(c.Delta)
			if onDelta != nil {
				onDelta(c.Delta)
			}
		}
	}
}

// begin loads the session and acquires its agent (marked in use: the caller
// must release it).
func (s *Service) begin(key, text string) (*turn, error) {
	if key == "" {
		return nil, errors.New("reply: empty session key")
	}
	for attempt := 0; ; attempt++ {
		sess, history, err := s.store.History(key, s.historyLimit())
		if err != nil {
			if errors.Is(err, store.ErrClosed) {
				return nil, ErrClosed
			}
			return nil, fmt.Errorf("reply: load session %q: %w", key, err)
		}
		want, err := s.specFor(s.effectiveModel(sess.Model))
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
		req := &provider.Request{Model: want.remoteModel, Messages: make([]provider.Message, 0, len(history)+2)}
		if want.systemPrompt != "" {
			req.Messages = append(req.Messages, provider.Message{Role: provider.RoleSystem, Content: want.systemPrompt})
		}
		for _, m := range history {
			req.Messages = append(req.Messages, provider.Message{Role: provider.Role(m.Role), Content: m.Content})
		}
		req.Messages = append(req.Messages, provider.Message{Role: provider.RoleUser, Content: text})
		return &turn{key: key, text: text, epoch: sess.Epoch, spec: want, agent: a, req: req, asked: s.now()}, nil
	}
}

// failed classifies a provider failure: the caller's cancellation as is,
// anything else counted and worded for the user.
func (s *Service) failed(ctx context.Context, t *turn, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.errs.inc(t.spec.ref.conf.Name, provider.KindOf(err))
	s.log.Debug("reply failed", "session", t.key, "model", t.spec.model, "error", err)
	return userError(t.spec.remoteModel, err)
}

// commit makes the turn durable before the reply is handed back (invariant
// 4). A /stop arriving now must not lose a reply the provider already gave,
// so the commit ignores ctx's cancellation. The epoch read at the start
// sends a turn that raced a /new to the archive it belongs to.
func (s *Service) commit(ctx context.Context, t *turn, reply string) error {
	err := s.store.AppendTurn(context.WithoutCancel(ctx), t.key, t.epoch,
		store.Message{Role: string(provider.RoleUser), Content: t.text, Time: t.asked},
		store.Message{Role: string(provider.RoleAssistant), Content: reply, Time: s.now()})
	if errors.Is(err, store.ErrClosed) {
		return ErrClosed
	}
	if err != nil {
		return fmt.Errorf("reply: record turn of session %q: %w", t.key, err)
	}
	return nil
}
