package router

import (
	"context"
	"errors"
	"testing"

	"github.com/plughost/gateway/shared"
)

// A command's answer is a notice, even when it says the command could not
// be done (no such provider): only failures the user cannot act on are
// errors, and they keep the "could not reply" prefix.
func TestCommandUserErrorsAreNotices(t *testing.T) {
	agents := &fakeAgents{
		SetModelFunc: func(_ context.Context, _, model string) error {
			if model == "nonsense/foo" {
				return userErr{`no provider "nonsense" is configured (providers: echo)`}
			}
			return errors.New("store: disk full")
		},
	}
	r, rec := newTestRouter(t, agents, Options{})
	r.Handle("web", msg("m1", "a", "/model nonsense/foo"))
	rep := rec.waitReply(t, "m1")
	if rep.Kind != shared.KindNotice || rep.Text != `no provider "nonsense" is configured (providers: echo)` {
		t.Errorf("/model nonsense/foo answered %+v; want the plain notice", rep)
	}
	r.Handle("web", msg("m2", "a", "/model echo/other"))
	if rep := rec.waitReply(t, "m2"); rep.Kind != shared.KindError || rep.Text != "The agent could not reply: store: disk full" {
		t.Errorf("/model with a store failure answered %+v", rep)
	}
}
