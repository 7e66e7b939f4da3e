package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Open no longer syncs the freelist. A file written by a gateway that did
// (or by a bbolt tool with default options) opens and keeps its data, and
// so does ours when reopened that way (a downgrade).
func TestFreelistFormatsInterchange(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	ctx := context.Background()
	appendN := func(from, n int) {
		s := openTest(t, path)
		for i := range n {
			u, a := turn(fmt.Sprint("m", from+i))
			if err := s.AppendTurn(ctx, "k", 0, u, a); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	withDefaults := func() {
		db, err := bolt.Open(path, 0o600, nil) // freelist synced
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMessages).Put(msgKey("k", 0, 1<<40), []byte(`{"role":"user","content":"by default options"}`))
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	appendN(0, 20)
	withDefaults()
	appendN(20, 20)
	s := openTest(t, path)
	defer s.Close()
	msgs, err := s.Transcript("k", 0)
	if err != nil || len(msgs) != 81 || msgs[0].Content != "m0" || msgs[40].Content != "by default options" {
		t.Fatalf("transcript: %d messages, %v", len(msgs), err)
	}
	checkConsistent(t, s)
}

// checkConsistent runs bbolt's page-level consistency check, which also
// verifies the freelist Open rebuilt.
func checkConsistent(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("consistency check: %v", err)
	}
}
