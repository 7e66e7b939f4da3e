package store

import (
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// take calls Take and waits for its result.
func take(t *testing.T, s *Store, platform, conv, id, cursor string) bool {
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

// TestTakeDedupesAcrossReopenAndKeepsTheCursor: an id taken once is a
// duplicate forever after (within the retention), also after the store is
// reopened, per platform and conversation; the cursor moves with each take.
func TestTakeDedupesAcrossReopenAndKeepsTheCursor(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openTest(t, path)
	if take(t, s, "tg", "c1", "7", "off-8") {
		t.Fatal("first take is a duplicate")
	}
	if !take(t, s, "tg", "c1", "7", "") {
		t.Fatal("second take of the same id is not a duplicate")
	}
	if take(t, s, "tg", "c2", "7", "") || take(t, s, "slack", "c1", "7", "") {
		t.Fatal("the same id in another conversation or platform is a duplicate")
	}
	if cur, err := s.Cursor("tg"); err != nil || cur != "off-8" {
		t.Fatalf("Cursor = %q, %v; want off-8 (an empty cursor leaves it)", cur, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path)
	defer s.Close()
	if !take(t, s, "tg", "c1", "7", "off-9") {
		t.Fatal("a taken id is forgotten after reopening")
	}
	if cur, _ := s.Cursor("tg"); cur != "off-9" {
		t.Fatalf("Cursor = %q, want off-9", cur)
	}
	if cur, _ := s.Cursor("never"); cur != "" {
		t.Fatalf("Cursor of a platform never seen = %q", cur)
	}
}

// TestCheckpointMovesOnlyTheCursor: a take with no id (a checkpoint)
// records the cursor and nothing else.
func TestCheckpointMovesOnlyTheCursor(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), FileName))
	defer s.Close()
	if take(t, s, "mx", "", "", "s5") || take(t, s, "mx", "", "", "s6") {
		t.Fatal("a checkpoint is a duplicate")
	}
	if cur, err := s.Cursor("mx"); err != nil || cur != "s6" {
		t.Fatalf("Cursor = %q, %v; want s6", cur, err)
	}
	if pending, err := s.Pending("mx"); err != nil || len(pending) != 0 {
		t.Fatalf("Pending = %q, %v; want nothing taken", pending, err)
	}
}

// TestTakeOrderAndDuplicatesInOneBatch: takes queued together commit in one
// transaction, in order, and a duplicate within the batch is found.
func TestTakeOrderAndDuplicatesInOneBatch(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), FileName))
	defer s.Close()
	var mu sync.Mutex
	var order []string
	var dups int
	var wg sync.WaitGroup
	for i := range 200 {
		id := string(rune('a' + i%100))
		wg.Add(1)
		s.Take("p", "c", id, "", nil, func(dup bool, err error) {
			defer wg.Done()
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			order = append(order, id)
			if dup {
				dups++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if dups != 100 {
		t.Errorf("duplicates = %d, want 100", dups)
	}
	for i, id := range order {
		if want := string(rune('a' + i%100)); id != want {
			t.Fatalf("take %d completed as %q, want %q: takes must complete in order", i, id, want)
		}
	}
}

// TestTakenIDsArePrunedAfterTheRetention keeps the inbox bounded.
func TestTakenIDsArePrunedAfterTheRetention(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, &Options{Now: clock, TakenRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	take(t, s, "p", "c", "old", "")
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	take(t, s, "p", "c", "new", "")
	s.Close()
	// Opening prunes.
	s, err = Open(path, &Options{Now: clock, TakenRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if take(t, s, "p", "c", "old", "") {
		t.Error("an id past its retention is still remembered")
	}
	if !take(t, s, "p", "c", "new", "") {
		t.Error("an id within its retention was pruned")
	}
}

// TestPendingUntilAnswered: a taken message stays pending, across a
// reopen, until it is answered; its id stays taken after.
func TestPendingUntilAnswered(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openTest(t, path)
	take(t, s, "p", "c", "1", "")
	take(t, s, "p", "c", "2", "")
	take(t, s, "q", "c", "3", "")
	s.Answered("p", "c", "1")
	s.Answered("p", "c", "never-taken")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path)
	defer s.Close()
	got, err := s.Pending("p")
	if err != nil || len(got) != 1 || string(got[0]) != "body of 2" {
		t.Fatalf("Pending = %q, %v; want only message 2", got, err)
	}
	if !take(t, s, "p", "c", "1", "") {
		t.Error("an answered id is no longer taken")
	}
}
