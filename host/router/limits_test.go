package router

import (
	"context"
	"testing"

	"github.com/plughost/gateway/shared"
)

// queue_limit = 0 means no queue: a message to a busy session is answered
// "busy" at once, and a reload to 0 takes effect (it is not ignored).
func TestZeroQueueLimitMeansNoQueue(t *testing.T) {
	for _, tc := range []struct {
		name   string
		start  int
		reload bool
	}{
		{"from the start", 0, false},
		{"after a reload", 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate()
			rec := &recorder{}
			r := New(Options{Agents: &fakeAgents{ReplyFunc: g.reply}, Sender: rec, QueueLimit: tc.start})
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				defer cancel()
				r.Close(ctx)
			}()
			if tc.reload {
				r.SetLimits(0, 0)
			}
			r.Handle("web", msg("m1", "alice", "one"))
			g.waitEntered(t, "one")
			r.Handle("web", msg("m2", "alice", "two"))
			rep := rec.waitReply(t, "m2")
			if rep.Kind != shared.KindBusy || rep.Text != "Busy: this session is still answering. Send it again once the current reply is done, or /stop it." {
				t.Errorf("message to a busy session answered %+v", rep)
			}
			// Another session is not busy.
			r.Handle("web", msg("m3", "bob", "three"))
			g.waitEntered(t, "three")
			close(g.release)
			if rep := rec.waitReply(t, "m1"); rep.Kind != shared.KindReply {
				t.Errorf("m1: %+v", rep)
			}
			if rep := rec.waitReply(t, "m3"); rep.Kind != shared.KindReply {
				t.Errorf("m3: %+v", rep)
			}
			if n := g.saw("two"); n != 0 {
				t.Errorf("the agent saw the refused message %d times", n)
			}
		})
	}
}
