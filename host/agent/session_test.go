package agent

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/provider/providertest"
)

// checkCopies fails unless every trusted session copy cached on an agent
// equals what the store holds.
func checkCopies(t *testing.T, s *Service) int {
	t.Helper()
	s.cache.mu.Lock()
	type cached struct {
		key   string
		limit int
		sess  sessionCopy
	}
	var copies []cached
	for k, a := range s.cache.byKey {
		if a.sessOK {
			copies = append(copies, cached{k, a.spec.historyLimit, a.sess})
		}
	}
	s.cache.mu.Unlock()
	for _, c := range copies {
		stored, hist, err := s.store.History(c.key, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]provider.Message, len(hist))
		for i, m := range hist {
			want[i] = provider.Message{Role: provider.Role(m.Role), Content: m.Content}
		}
		if c.sess.epoch != stored.Epoch || c.sess.model != stored.Model || !reflect.DeepEqual(c.sess.tail, want) && (len(c.sess.tail) > 0 || len(want) > 0) {
			t.Fatalf("%s: cached copy (epoch %d, model %q, %d messages) differs from the store (epoch %d, model %q, %d messages)\ncached %v\nstored %v",
				c.key, c.sess.epoch, c.sess.model, len(c.sess.tail), stored.Epoch, stored.Model, len(want), c.sess.tail, want)
		}
	}
	return len(copies)
}

// Turns on a cached agent use its copy of the session, extended after each
// commit and trimmed to the history limit, without rebuilding the agent.
func TestCachedSessionFollowsTheStore(t *testing.T) {
	cfg := echoConfig()
	cfg.HistoryLimit = 4
	s := newTestService(t, cfg, Options{})
	tr := track(s)
	for i := range 5 {
		if _, err := s.Reply(context.Background(), "alice", fmt.Sprint("q", i)); err != nil {
			t.Fatal(err)
		}
		if n := checkCopies(t, s); n != 1 {
			t.Fatalf("turn %d: %d trusted copies; want alice's", i, n)
		}
	}
	s.cache.mu.Lock()
	tail := slices.Clone(s.cache.byKey["alice"].sess.tail)
	s.cache.mu.Unlock()
	if len(tail) != 4 || tail[0].Content != "q3" || tail[3].Content != "echo: q4" {
		t.Fatalf("cached tail %v; want the last 4 messages", tail)
	}
	tr.mu.Lock()
	built := len(tr.agents)
	tr.mu.Unlock()
	if built != 1 {
		t.Fatalf("%d agents built for one session", built)
	}
}

// A /new racing a running reply: the reply commits to the epoch it started
// with (now the archive), and the next turn starts the new transcript with
// no history, although the agent was cached with the old one.
func TestNewDuringReplyArchivesItAndNextTurnStartsEmpty(t *testing.T) {
	srv := providertest.New(t)
	release := make(chan struct{})
	srv.Hold = func(ctx context.Context, r *providertest.Request) {
		if r.LastUser() != "second" {
			return
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	s := newTestService(t, openaiConfig(srv, 8, 8), Options{Grace: time.Minute})
	ctx := context.Background()
	if _, err := s.Reply(ctx, "alice", "first"); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := s.Reply(ctx, "alice", "second"); errc <- err }()
	waitFor(t, "the second request in flight", 5*time.Second, func() bool { return srv.InFlight() == 1 })
	if err := s.Reset(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reply(ctx, "alice", "third"); err != nil {
		t.Fatal(err)
	}
	if r := srv.LastRequest(); len(r.Messages) != 2 || r.Messages[1].Content != "third" {
		t.Fatalf("first turn after /new sent %+v; want the system prompt and \"third\" only", r.Messages)
	}
	old, err := s.store.Transcript("alice", 0)
	if err != nil || len(old) != 4 || old[2].Content != "second" {
		t.Fatalf("archive = %+v, %v; want first and second", old, err)
	}
	if info, _ := s.Session("alice"); info.Messages != 2 || info.Archived != 1 {
		t.Fatalf("session %+v; want the third turn alone in epoch 1", info)
	}
	checkCopies(t, s)
}

// Replies, /new and /model racing on the same sessions (which the router
// never does, but the Service allows), some /new with a ctx already ended
// (their write may land after they return): once everything settled, every
// trusted cached copy equals the store.
func TestCachedSessionsMatchStoreUnderRacingWrites(t *testing.T) {
	cfg := echoConfig()
	cfg.HistoryLimit = 6
	cfg.MaxAgents = 4
	s := newTestService(t, cfg, Options{})
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	const workers, ops, sessions = 12, 150, 6
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range ops {
				key := fmt.Sprint("s", rng.IntN(sessions))
				var err error
				switch n := rng.IntN(20); {
				case n == 0:
					err = s.Reset(context.Background(), key)
				case n == 1:
					_ = s.Reset(ended, key) // may or may not land
				case n == 2:
					err = s.SetModel(context.Background(), key, fmt.Sprint("echo/m", rng.IntN(2)))
				default:
					_, err = s.Reply(context.Background(), key, fmt.Sprint(w, "-", i))
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, "failed writes to settle", 5*time.Second, func() bool {
		s.cache.mu.Lock()
		defer s.cache.mu.Unlock()
		return len(s.cache.flight) == 0
	})
	checkCopies(t, s)
	// Serial turns from here on use and extend the copies.
	for k := range sessions {
		for range 3 {
			if _, err := s.Reply(context.Background(), fmt.Sprint("s", k), "after"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := checkCopies(t, s); n == 0 {
		t.Fatal("no trusted copy after serial turns")
	}
}

// A /new that lands between a turn's store read and the caching of what it
// read: that turn goes to the archive (it read the old epoch), but its read
// must not be cached, or every later turn would follow it there.
func TestNewDuringLoadIsNotCached(t *testing.T) {
	s := newTestService(t, echoConfig(), Options{})
	ctx := context.Background()
	if _, err := s.Reply(ctx, "alice", "first"); err != nil {
		t.Fatal(err)
	}
	s.cache.evict("alice", ReasonCapacity) // the next turn loads
	once := true
	s.loaded = func(key string) {
		if once {
			once = false
			if err := s.Reset(ctx, key); err != nil {
				t.Error(err)
			}
		}
	}
	if _, err := s.Reply(ctx, "alice", "read before /new"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reply(ctx, "alice", "after /new"); err != nil {
		t.Fatal(err)
	}
	cur, err := s.store.Transcript("alice", 1)
	if err != nil || len(cur) != 2 || cur[0].Content != "after /new" {
		t.Fatalf("epoch 1 = %+v, %v; want the turn after /new alone", cur, err)
	}
	checkCopies(t, s)
}

// A turn that starts after /new has reached the store but before its agent
// is evicted must not use the agent's copy of the old epoch.
func TestTurnDuringNewReadsTheStore(t *testing.T) {
	s := newTestService(t, echoConfig(), Options{})
	ctx := context.Background()
	if _, err := s.Reply(ctx, "alice", "first"); err != nil {
		t.Fatal(err)
	}
	s.written = func(key string) {
		if _, err := s.Reply(ctx, key, "right after /new"); err != nil {
			t.Error(err)
		}
	}
	if err := s.Reset(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	cur, err := s.store.Transcript("alice", 1)
	if err != nil || len(cur) != 2 || cur[0].Content != "right after /new" {
		t.Fatalf("epoch 1 = %+v, %v; want the turn that followed /new", cur, err)
	}
	checkCopies(t, s)
}
