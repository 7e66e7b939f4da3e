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
