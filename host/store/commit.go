package store

import (
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
)

// op is one queued write.
type op struct {
	fn   func(*bolt.Tx) error
	err  error
	done chan struct{}
	// then, when set, is called with the result instead of closing done.
	then func(error)
	// internal writes (pruning) are not counted in CommitStats.
	internal bool
}

// finish reports the op's result to its writer.
func (o *op) finish() {
	if o.then != nil {
		o.then(o.err)
		return
	}
	close(o.done)
}

// writeAsync queues fn for the committer and returns at once; then is
// called with the result once it is durable (or failed), on the committer.
func (s *Store) writeAsync(fn func(*bolt.Tx) error, then func(error)) {
	o := &op{fn: fn, then: then}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		then(ErrClosed)
		return
	}
	s.ops <- o
	s.mu.RUnlock()
}

// write queues fn for the committer and waits until it is durable. If ctx
// ends first, write returns ctx's error; fn may still commit.
func (s *Store) write(ctx context.Context, fn func(*bolt.Tx) error) error {
	o := &op{fn: fn, done: make(chan struct{})}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	select {
	case s.ops <- o:
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	s.mu.RUnlock()
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errBatch aborts a group transaction in which one write failed.
var errBatch = errors.New("a write in the batch failed")

// commitLoop is the group committer: it takes every write queued since the
// last commit and commits them in one transaction (one fsync).
func (s *Store) commitLoop() {
	defer close(s.done)
	batch := make([]*op, 0, s.maxBatch)
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	var syncTick <-chan time.Time
	if s.syncEvery > 0 {
		t := time.NewTicker(s.syncEvery)
		defer t.Stop()
		syncTick = t.C
	}
	for {
		batch = batch[:0]
		select {
		case <-syncTick:
			s.syncNow()
			continue
		case <-prune.C:
			s.commit([]*op{{fn: s.pruneTaken, internal: true, then: func(err error) {
				if err != nil {
					s.log.Warn("could not prune taken message ids", "error", err)
				}
			}}})
			continue
		case o := <-s.ops:
			batch = append(batch, o)
		case <-s.quit:
			// Close holds no more senders: commit whatever is queued, then stop.
			for {
				select {
				case o := <-s.ops:
					batch = append(batch, o)
					if len(batch) == s.maxBatch {
						s.commit(batch)
						batch = batch[:0]
					}
				default:
					if len(batch) > 0 {
						s.commit(batch)
					}
					return
				}
			}
		}
	gather:
		for len(batch) < s.maxBatch {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break gather
			}
		}
		s.commit(batch)
	}
}

// syncNow fsyncs the file if anything was committed since the last time
// (sync = DURATION).
func (s *Store) syncNow() {
	if !s.dirty {
		return
	}
	s.dirty = false
	if err := s.db.Sync(); err != nil {
		s.log.Error("could not fsync the session store; will try again", "error", err)
		s.dirty = true
	}
}

func (s *Store) commit(batch []*op) {
	s.dirty = true
	var failed *op
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, o := range batch {
			if err := o.fn(tx); err != nil {
				failed = o
				o.err = err
				return errBatch
			}
		}
		return nil
	})
	if err == nil || err != errBatch || len(batch) == 1 {
		s.noteCommit(err)
	}
	if err != nil && len(batch) > 1 {
		// One bad write must not fail its neighbours: commit each alone.
		s.log.Warn("group commit failed; committing the batch one by one", "writes", len(batch), "error", err)
		for _, o := range batch {
			if o == failed {
				continue
			}
			s.commit([]*op{o})
		}
		if failed != nil {
			failed.finish()
		}
		return
	}
	if err != nil && err != errBatch {
		for _, o := range batch {
			o.err = err
		}
	}
	if err == nil {
		s.statsMu.Lock()
		for _, o := range batch {
			if !o.internal {
				s.stats.Writes++
			}
		}
		if len(batch) > 1 || !batch[0].internal {
			s.stats.Commits++
		}
		s.statsMu.Unlock()
	}
	for _, o := range batch {
		o.finish()
	}
}

// Flush returns once every write queued before it has committed or failed.
// A write whose ctx ended may still commit (see write); Flush is how a
// caller that cached what the store holds learns when that write has landed.
func (s *Store) Flush(ctx context.Context) error {
	return s.write(ctx, func(*bolt.Tx) error { return nil })
}
