package adapter

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/plughost/gateway/plugins/discord/fakediscord"
	"github.com/plughost/gateway/shared"
)

// A plugin started with the cursor of the last message the host took
// resumes that session: what was dispatched after it, while no plugin was
// connected, is delivered, and no IDENTIFY is spent.
func TestCursorResumesTheSessionAndReplays(t *testing.T) {
	fake := fakediscord.New(t)
	first := newHarness(t, fake, nil).run()
	first.health(shared.Connected)
	fake.InjectMessage(mentionMsg("C1", "one"))
	m1 := first.message()
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := first.client.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return fake.Connections() == 0 })
	in := mentionMsg("C1", "two")
	fake.InjectMessage(in) // nobody connected: kept for a resume

	next := &harness{t: t, fake: fake, events: make(chan shared.Event, 256)}
	next.client = shared.TestPlatform(t, &Adapter{tune: fastTiming})
	raw, _ := json.Marshal(map[string]any{"token": fakediscord.DefaultToken, "api_url": fake.APIURL})
	if err := next.client.Configure(context.Background(), shared.Config{Raw: raw, Cursor: m1.Cursor}); err != nil {
		t.Fatal(err)
	}
	next.run()
	m2 := next.message()
	if m2.ID != in.ID || m2.Text != "two" {
		t.Fatalf("after resuming: %+v, want the message sent while nobody was connected (identifies %d resumes %d)", m2, fake.Identifies(), fake.Resumes())
	}
	if fake.Identifies() != 1 || fake.Resumes() != 1 {
		t.Fatalf("identifies %d, resumes %d; want 1 and 1", fake.Identifies(), fake.Resumes())
	}
}

// A cursor Discord no longer knows (op 9, not resumable) or one that is not
// a cursor at all starts a fresh session.
func TestUnusableCursorIdentifies(t *testing.T) {
	for _, cur := range []string{`{"session_id":"gone","seq":5}`, "not json", ""} {
		fake := fakediscord.New(t)
		h := &harness{t: t, fake: fake, events: make(chan shared.Event, 256)}
		h.client = shared.TestPlatform(t, &Adapter{tune: fastTiming})
		raw, _ := json.Marshal(map[string]any{"token": fakediscord.DefaultToken, "api_url": fake.APIURL})
		if err := h.client.Configure(context.Background(), shared.Config{Raw: raw, Cursor: cur}); err != nil {
			t.Fatal(err)
		}
		h.run()
		waitUntil(t, func() bool { return fake.Identifies() == 1 })
		fake.InjectMessage(mentionMsg("C1", "hi"))
		if m := h.message(); m.Text != "hi" {
			t.Fatalf("cursor %q: got %+v", cur, m)
		}
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
