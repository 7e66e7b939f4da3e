package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The inbox: which inbound messages the host has taken, per platform, and
// each platform's cursor.
//
// A plugin confirms a message to its platform only once the host has taken
// it (shared.Deliver), and "taken" means recorded here durably. A platform
// delivers a message again when its plugin died before it could confirm; the
// host finds the id here and acknowledges it again without answering it a
// second time, across plugin and host restarts alike. The cursor (the
// platform's position after the message) is written in the same transaction
// and handed back to the plugin when it starts again.
//
// Bucket "taken" maps platform ‖ 0 ‖ conversation ‖ 0 ‖ id to the time it
// was taken, followed by the message itself until it is answered (see
// Answered and Pending: a message taken but not answered when the host died
// is answered after the restart); bucket "taken_age" maps that time ‖ the same key to nothing, so
// ids older than the retention are pruned from the front of one ordered
// range. Bucket "cursors" maps a platform to its cursor.
var (
	bucketTaken    = []byte("taken")
	bucketTakenAge = []byte("taken_age")
	bucketCursors  = []byte("cursors")
)

// DefaultTakenRetention is how long a taken message id is remembered: a
// platform redelivers within minutes, never after days.
const DefaultTakenRetention = 7 * 24 * time.Hour

// pruneEvery is how often ids past their retention are removed.
const pruneEvery = time.Hour

// pruneBatch bounds the ids one prune transaction removes.
const pruneBatch = 10000

func takenKey(platform, conv, id string) []byte {
	k := make([]byte, 0, len(platform)+len(conv)+len(id)+2)
	k = append(k, platform...)
	k = append(k, 0)
	k = append(k, conv...)
	k = append(k, 0)
	return append(k, id...)
}

// Take records durably that the host took message id of conversation conv
// from platform, and that platform's cursor after it ("" leaves the cursor
// as it is). It does not wait: done is called once the record is durable
// (or failed), with dup set when the id had been taken before. Takes commit
// in the order they were made, with other writes, in group commits. done
// runs on the store's committer goroutine and must return quickly.
// body is the message as the caller encodes it; it is kept until Answered
// and returned by Pending meanwhile. An empty id records only the cursor (a
// checkpoint: the platform moved with no message to take).
func (s *Store) Take(platform, conv, id, cursor string, body []byte, done func(dup bool, err error)) {
	var dup bool
	s.writeAsync(func(tx *bolt.Tx) error {
		dup = false
		k := takenKey(platform, conv, id)
		taken := tx.Bucket(bucketTaken)
		switch {
		case id == "":
			// A checkpoint: only the cursor moves.
		case taken.Get(k) != nil:
			dup = true
		default:
			now := s.now().UnixNano()
			var v [8]byte
			binary.BigEndian.PutUint64(v[:], uint64(now))
			if err := taken.Put(k, append(v[:], body...)); err != nil {
				return fmt.Errorf("record message %q of %s: %w", id, platform, err)
			}
			if err := tx.Bucket(bucketTakenAge).Put(append(v[:], k...), nil); err != nil {
				return fmt.Errorf("record message %q of %s: %w", id, platform, err)
			}
		}
		if cursor != "" {
			if err := tx.Bucket(bucketCursors).Put([]byte(platform), []byte(cursor)); err != nil {
				return fmt.Errorf("record the cursor of %s: %w", platform, err)
			}
		}
		return nil
	}, func(err error) { done(dup, err) })
}

// Answered records that the message taken as platform/conv/id was answered:
// its body is dropped, its id kept for dedupe. It does not wait.
func (s *Store) Answered(platform, conv, id string) {
	s.writeAsync(func(tx *bolt.Tx) error {
		taken := tx.Bucket(bucketTaken)
		k := takenKey(platform, conv, id)
		if v := taken.Get(k); len(v) > 8 {
			return taken.Put(k, append([]byte(nil), v[:8]...))
		}
		return nil
	}, func(err error) {
		if err != nil {
			s.log.Warn("could not record a message as answered", "platform", platform, "id", id, "error", err)
		}
	})
}

// Pending returns the bodies of platform's messages taken and not yet
// answered, in key order.
func (s *Store) Pending(platform string) ([][]byte, error) {
	var out [][]byte
	prefix := append([]byte(platform), 0)
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketTaken).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(v) > 8 {
				out = append(out, append([]byte(nil), v[8:]...))
			}
		}
		return nil
	})
	return out, err
}

// Cursor returns the last cursor recorded for platform, "" if none.
func (s *Store) Cursor(platform string) (string, error) {
	var cur string
	err := s.db.View(func(tx *bolt.Tx) error {
		cur = string(tx.Bucket(bucketCursors).Get([]byte(platform)))
		return nil
	})
	return cur, err
}

// pruneTaken removes the ids taken before the retention, at most
// pruneBatch of them per call.
func (s *Store) pruneTaken(tx *bolt.Tx) error {
	cutoff := uint64(s.now().Add(-s.retention).UnixNano())
	ages := tx.Bucket(bucketTakenAge)
	taken := tx.Bucket(bucketTaken)
	c := ages.Cursor()
	var end [8]byte
	binary.BigEndian.PutUint64(end[:], cutoff)
	n := 0
	for k, _ := c.First(); k != nil && bytes.Compare(k[:8], end[:]) < 0 && n < pruneBatch; k, _ = c.First() {
		if err := taken.Delete(k[8:]); err != nil {
			return err
		}
		if err := c.Delete(); err != nil {
			return err
		}
		n++
	}
	if n > 0 {
		s.log.Debug("pruned taken message ids", "ids", n)
	}
	return nil
}
