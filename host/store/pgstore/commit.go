package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/plughost/gateway/host/store"
)

// op is one queued write: a function run in the batch's transaction, or
// one statement, sent with the statements queued next to it in one round
// trip (pipelined).
type op struct {
	fn   func(context.Context, pgx.Tx) error
	sql  string
	args []any
	// scan checks a statement's result row; nil runs it as Exec.
	scan func(pgx.Row) error
	err  error
	done chan struct{}
}

// write queues fn for the committer and waits until it has committed. If
// ctx ends first, write returns ctx's error; fn may still commit.
func (s *Store) write(ctx context.Context, fn func(context.Context, pgx.Tx) error) error {
	return s.queue(ctx, &op{fn: fn, done: make(chan struct{})})
}

// writeStmt is write for one statement; scan, if set, checks its row.
func (s *Store) writeStmt(ctx context.Context, scan func(pgx.Row) error, sql string, args ...any) error {
	return s.queue(ctx, &op{sql: sql, args: args, scan: scan, done: make(chan struct{})})
}

func (s *Store) queue(ctx context.Context, o *op) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return store.ErrClosed
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

// Flush returns once every write queued before it has committed or failed.
func (s *Store) Flush(ctx context.Context) error {
	return s.write(ctx, func(context.Context, pgx.Tx) error { return nil })
}

var errBatch = errors.New("a write in the batch failed")

// commitLoop is the group committer: every write queued since the last
// commit goes into one transaction (one WAL flush).
func (s *Store) commitLoop() {
	defer close(s.done)
	batch := make([]*op, 0, s.maxBatch)
	for {
		batch = batch[:0]
		select {
		case o := <-s.ops:
			batch = append(batch, o)
		case <-s.quit:
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

// commitTimeout bounds one transaction: a server that stopped answering
// fails the writes (and the store turns failing) instead of hanging them.
const commitTimeout = 30_000_000_000 // 30s

func (s *Store) runTx(batch []*op) (failed *op, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for i := 0; i < len(batch); {
			if o := batch[i]; o.fn != nil {
				if err := o.fn(ctx, tx); err != nil {
					failed, o.err = o, err
					return errBatch
				}
				i++
				continue
			}
			j := i
			b := &pgx.Batch{}
			for ; j < len(batch) && batch[j].fn == nil; j++ {
				b.Queue(batch[j].sql, batch[j].args...)
			}
			br := tx.SendBatch(ctx, b)
			for _, o := range batch[i:j] {
				var err error
				if o.scan != nil {
					err = o.scan(br.QueryRow())
				} else {
					_, err = br.Exec()
				}
				if err != nil {
					_ = br.Close()
					failed, o.err = o, err
					return errBatch
				}
			}
			if err := br.Close(); err != nil {
				return err
			}
			i = j
		}
		return nil
	})
	return failed, err
}

func (s *Store) commit(batch []*op) {
	failed, err := s.runTx(batch)
	// A single write that lost a race with another host runs again.
	for try := 0; len(batch) == 1 && try < 3 && errors.Is(err, errBatch) && retryable(batch[0].err); try++ {
		batch[0].err = nil
		failed, err = s.runTx(batch)
	}
	if err != nil && len(batch) > 1 {
		// One bad write must not fail its neighbours: commit each alone.
		s.log.Warn("group commit failed; committing the batch one by one", "writes", len(batch), "error", err)
		for _, o := range batch {
			if o == failed && !retryable(o.err) {
				continue
			}
			o.err = nil
			s.commit([]*op{o})
		}
		if failed != nil && !retryable(failed.err) {
			close(failed.done)
		}
		return
	}
	switch {
	case errors.Is(err, errBatch):
		s.noteCommit(batch[0].err)
	default:
		s.noteCommit(err)
	}
	if err != nil && !errors.Is(err, errBatch) {
		for _, o := range batch {
			o.err = err
		}
	}
	if err == nil {
		s.statsMu.Lock()
		s.stats.Writes += uint64(len(batch))
		s.stats.Commits++
		s.statsMu.Unlock()
	}
	for _, o := range batch {
		close(o.done)
	}
}
