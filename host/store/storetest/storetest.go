// Package storetest is the conformance suite every store.Backend passes:
// one suite, run against the bbolt store and the PostgreSQL store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plughost/gateway/host/store"
)

// Opener opens a fresh, empty store for one test and returns a function
// that opens it (the same data) again; each call's store is closed by the
// test.
type Opener func(t *testing.T) (open func() store.Backend)

// Run runs the suite.
func Run(t *testing.T, opener Opener) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, func() store.Backend)
	}{
		{"AppendHistoryAndReopen", appendHistoryAndReopen},
		{"ResetArchivesAndLateTurnGoesToArchive", resetArchives},
		{"GroupCommitBatchesConcurrentWrites", groupCommit},
		{"ClosedStore", closedStore},
		{"InvalidKey", invalidKey},
		{"TranscriptRangesDoNotMix", rangesDoNotMix},
		{"MarkUndelivered", markUndelivered},
		{"Pairing", pairing},
		{"Usage", usage},
		{"Health", health},
		{"InboxDedupesAndKeepsTheCursor", inboxDedupe},
		{"InboxPendingUntilAnswered", inboxPending},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, opener(t)) })
	}
}

func turn(text string) (store.Message, store.Message) {
	now := time.Now()
	return store.Message{Role: "user", Content: text, Time: now}, store.Message{Role: "assistant", Content: "re: " + text, Time: now}
}

func appendHistoryAndReopen(t *testing.T, open func() store.Backend) {
	s := open()
	ctx := context.Background()
	for i := range 5 {
		u, a := turn(fmt.Sprint("m", i))
		if err := s.AppendTurn(ctx, "alice", 0, u, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetModel(ctx, "alice", "openai/gpt-4o"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	defer s.Close()
	sess, hist, err := s.History("alice", 3)
	if err != nil {
		t.Fatal(err)
	}
	if sess.Messages != 10 || sess.Model != "openai/gpt-4o" || !sess.Exists() || sess.Updated.Before(sess.Created) {
		t.Fatalf("session = %+v", sess)
	}
	if len(hist) != 3 || hist[0].Content != "re: m3" || hist[1].Content != "m4" || hist[2].Content != "re: m4" {
		t.Fatalf("last 3 = %+v", hist)
	}
	if fresh, _ := s.Session("nobody"); fresh.Exists() {
		t.Fatalf("unknown session exists: %+v", fresh)
	}
	if keys, err := s.Keys(); err != nil || len(keys) != 1 || keys[0] != "alice" {
		t.Fatalf("keys = %q, %v", keys, err)
	}
}

func resetArchives(t *testing.T, open func() store.Backend) {
	s := open()
	defer s.Close()
	ctx := context.Background()
	u, a := turn("before")
	if err := s.AppendTurn(ctx, "bob", 0, u, a); err != nil {
		t.Fatal(err)
	}
	if err := s.SetModel(ctx, "bob", "echo/x"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reset(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	u, a = turn("late")
	if err := s.AppendTurn(ctx, "bob", 0, u, a); err != nil {
		t.Fatal(err)
	}
	sess, hist, err := s.History("bob", 10)
	if err != nil || sess.Epoch != 1 || sess.Messages != 0 || len(hist) != 0 || sess.Model != "echo/x" {
		t.Fatalf("after reset: %+v %v %v", sess, hist, err)
	}
	old, err := s.Transcript("bob", 0)
	if err != nil || len(old) != 4 || old[2].Content != "late" {
		t.Fatalf("archive = %+v, %v", old, err)
	}
	if err := s.AppendTurn(ctx, "bob", 7, u, a); err == nil {
		t.Fatal("append to a future epoch succeeded")
	}
	u, a = turn("new")
	if err := s.AppendTurn(ctx, "bob", 1, u, a); err != nil {
		t.Fatal(err)
	}
	if h := s.Health(); h.State != store.StateOK {
		t.Fatalf("a refused write made the store %+v", h)
	}
	// Reset of a session never written creates it at epoch 1.
	if err := s.Reset(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if sess, _ := s.Session("carol"); sess.Epoch != 1 || !sess.Exists() {
		t.Fatalf("reset of a new session = %+v", sess)
	}
}

func groupCommit(t *testing.T, open func() store.Backend) {
	s := open()
	defer s.Close()
	const writers, each = 64, 10
	var wg sync.WaitGroup
	errc := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				u, a := turn(fmt.Sprint(i))
				errc <- s.AppendTurn(context.Background(), fmt.Sprint("s", w), 0, u, a)
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Writes != writers*each || st.Commits >= st.Writes {
		t.Fatalf("stats = %+v; want %d writes in fewer commits", st, writers*each)
	}
	t.Logf("%d writes in %d commits", st.Writes, st.Commits)
	for w := range writers {
		sess, _ := s.Session(fmt.Sprint("s", w))
		all, _ := s.Transcript(fmt.Sprint("s", w), 0)
		if sess.Messages != 2*each || len(all) != 2*each {
			t.Fatalf("session s%d has %d messages, transcript %d", w, sess.Messages, len(all))
		}
	}
}

func closedStore(t *testing.T, open func() store.Backend) {
	s := open()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	u, a := turn("x")
	if err := s.AppendTurn(context.Background(), "k", 0, u, a); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("append after close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

func invalidKey(t *testing.T, open func() store.Backend) {
	s := open()
	defer s.Close()
	u, a := turn("x")
	if err := s.AppendTurn(context.Background(), "", 0, u, a); !errors.Is(err, store.ErrInvalidKey) {
		t.Fatalf("append with an empty key = %v", err)
	}
	if err := s.SetModel(context.Background(), "", "m"); !errors.Is(err, store.ErrInvalidKey) {
		t.Fatalf("set model with an empty key = %v", err)
	}
}

func rangesDoNotMix(t *testing.T, open func() store.Backend) {
	s := open()
	defer s.Close()
	ctx := context.Background()
	for _, k := range []string{"a", "ab", "a\x01", "b"} {
		for i := range 3 {
			u, a := turn(k + fmt.Sprint(i))
			if err := s.AppendTurn(ctx, k, 0, u, a); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Reset(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	u, a := turn("a-new")
	if err := s.AppendTurn(ctx, "a", 1, u, a); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]int{"a": 2, "ab": 6, "a\x01": 6, "b": 6} {
		_, hist, err := s.History(k, 100)
		if err != nil || len(hist) != want {
			t.Fatalf("%q: %d messages, %v; want %d", k, len(hist), err, want)
		}
		for _, m := range hist {
			if !strings.HasPrefix(m.Content, k) && !strings.HasPrefix(m.Content, "re: "+k) {
				t.Fatalf("%q holds %q", k, m.Content)
			}
		}
	}
	if old, _ := s.Transcript("a", 0); len(old) != 6 || old[0].Content != "a0" {
		t.Fatalf("archive of a = %+v", old)
	}
}

func markUndelivered(t *testing.T, open func() store.Backend) {
	s := open()
	defer s.Close()
	ctx := context.Background()
	base := time.Now()
	for i, text := range []string{"one", "two", "three"} {
		at := base.Add(time.Duration(i) * time.Second)
		if err := s.AppendTurn(ctx, "k", 0, store.Message{Role: "user", Content: text, Time: at},
			store.Message{Role: "assistant", Content: "re: " + text, Time: at}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkUndelivered(ctx, "k", 0, base.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	_, hist, err := s.History("k", 4)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range hist {
		got = append(got, m.Content)
	}
	if want := "one|re: one|three|re: three"; strings.Join(got, "|") != want {
		t.Fatalf("history = %q, want %q", got, want)
	}
	all, err := s.Transcript("k", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 || !all[2].Undelivered || !all[3].Undelivered || all[0].Undelivered || all[4].Undelivered {
		t.Fatalf("transcript = %+v, want turn two (only) flagged", all)
	}
	if err := s.MarkUndelivered(ctx, "k", 0, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func pairing(t *testing.T, open func() store.Backend) {
	s := open()
	defer s.Close()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	if _, ok, err := s.PairingUser("discord", "u1"); ok || err != nil {
		t.Fatalf("unknown user: ok=%v err=%v", ok, err)
	}
	first := store.PairingCode{Code: "AAAA", Platform: "discord", UserID: "u1", UserName: "ann", ConversationID: "dm1", Created: now, Expires: now.Add(time.Hour)}
	if err := s.IssuePairingCode(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := first
	second.Code = "BBBB"
	if err := s.IssuePairingCode(ctx, second); err != nil {
		t.Fatal(err)
	}
	codes, err := s.PairingCodes()
	if err != nil || len(codes) != 1 || codes[0].Code != "BBBB" {
		t.Fatalf("codes = %+v, %v; want only the user's last", codes, err)
	}
	u, ok, err := s.PairingUser("discord", "u1")
	if err != nil || !ok || u.LastCode != "BBBB" || u.IsApproved() || u.UserName != "ann" {
		t.Fatalf("user = %+v %v %v", u, ok, err)
	}
	if _, err := s.ApprovePairingCode(ctx, "AAAA", now); !errors.Is(err, store.ErrUnknownCode) {
		t.Fatalf("approving a replaced code = %v", err)
	}
	var exp *store.ExpiredCodeError
	if _, err := s.ApprovePairingCode(ctx, "BBBB", now.Add(2*time.Hour)); !errors.As(err, &exp) {
		t.Fatalf("approving an expired code = %v", err)
	}
	c, err := s.ApprovePairingCode(ctx, "BBBB", now)
	if err != nil || c.UserID != "u1" || c.ConversationID != "dm1" {
		t.Fatalf("approve = %+v, %v", c, err)
	}
	if _, err := s.ApprovePairingCode(ctx, "BBBB", now); !errors.Is(err, store.ErrUnknownCode) {
		t.Fatalf("approving a used code = %v", err)
	}
	users, err := s.ApprovedUsers()
	if err != nil || len(users) != 1 || users[0].UserID != "u1" || !users[0].IsApproved() {
		t.Fatalf("approved = %+v, %v", users, err)
	}
	if err := s.RevokePairing(ctx, "discord", "u1"); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokePairing(ctx, "discord", "u1"); !errors.Is(err, store.ErrNotPaired) {
		t.Fatalf("revoking twice = %v", err)
	}
	if users, _ := s.ApprovedUsers(); len(users) != 0 {
		t.Fatalf("approved after revoke = %+v", users)
	}
	if h := s.Health(); h.State != store.StateOK {
		t.Fatalf("refused pairing writes made the store %+v", h)
	}
}

func usage(t *testing.T, open func() store.Backend) {
	s := open()
	defer s.Close()
	ctx := context.Background()
	base := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for i := range 4 {
		if err := s.RecordUsage(ctx, store.UsageRecord{Time: base.Add(time.Duration(i) * time.Hour), Platform: "p", Agent: "a",
			UserID: fmt.Sprint("u", i), PromptTokens: int64(i), CompletionTokens: 10}); err != nil {
			t.Fatal(err)
		}
	}
	var got []store.UsageRecord
	if err := s.Usage(base.Add(time.Hour), func(r store.UsageRecord) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].UserID != "u1" || !got[0].Time.Equal(base.Add(time.Hour)) || got[2].PromptTokens != 3 {
		t.Fatalf("usage since +1h = %+v", got)
	}
}

func health(t *testing.T, open func() store.Backend) {
	s := open()
	defer s.Close()
	if h := s.Health(); h.State != store.StateOK || h.LastError != "" {
		t.Fatalf("fresh store health = %+v", h)
	}
}

// take calls Take and waits for its result.
func take(t *testing.T, s store.Backend, platform, conv, id, cursor string) bool {
	t.Helper()
	type result struct {
		dup bool
		err error
	}
	ch := make(chan result, 1)
	s.Take(platform, conv, id, cursor, []byte("body of "+id), func(dup bool, err error) { ch <- result{dup, err} })
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Take %s/%s/%s: %v", platform, conv, id, r.err)
		}
		return r.dup
	case <-time.After(10 * time.Second):
		t.Fatal("Take did not complete")
		return false
	}
}

func inboxDedupe(t *testing.T, open func() store.Backend) {
	s := open()
	if take(t, s, "tg", "c1", "7", "off-8") {
		t.Fatal("a new id is a duplicate")
	}
	if !take(t, s, "tg", "c1", "7", "") {
		t.Fatal("an id taken before is not a duplicate")
	}
	if take(t, s, "tg", "c2", "7", "") || take(t, s, "other", "c1", "7", "") {
		t.Fatal("an id of another conversation or platform is a duplicate")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	defer s.Close()
	if !take(t, s, "tg", "c1", "7", "off-9") {
		t.Fatal("a taken id is forgotten after a reopen")
	}
	if cur, err := s.Cursor("tg"); err != nil || cur != "off-9" {
		t.Fatalf("Cursor = %q, %v; want off-9", cur, err)
	}
	if cur, err := s.Cursor("never"); err != nil || cur != "" {
		t.Fatalf("Cursor of a platform never seen = %q, %v", cur, err)
	}
}

func inboxPending(t *testing.T, open func() store.Backend) {
	s := open()
	take(t, s, "p", "c", "1", "")
	take(t, s, "p", "c", "2", "")
	take(t, s, "q", "c", "3", "")
	s.Answered("p", "c", "1")
	s.Answered("p", "c", "never-taken")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	defer s.Close()
	got, err := s.Pending("p")
	if err != nil || len(got) != 1 || string(got[0]) != "body of 2" {
		t.Fatalf("Pending = %q, %v; want only message 2", got, err)
	}
	if !take(t, s, "p", "c", "1", "") {
		t.Error("an answered id is no longer taken")
	}
}
