package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plughost/gateway/host/store"
)

// The inbox, as in the bbolt store (see store.Store.Take): which inbound
// messages were taken, per platform and conversation, with the message
// until it is answered, and each platform's cursor. Shared by the hosts of a
// cluster: the host that takes a platform over answers what its previous
// holder took and did not answer, and starts its plugin at that host's
// cursor.

// queueAsync queues o without waiting; then runs once it has committed or
// failed.
func (s *Store) queueAsync(o *op, then func(error)) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		then(store.ErrClosed)
		return
	}
	s.ops <- o
	s.mu.RUnlock()
	go func() {
		<-o.done
		then(o.err)
	}()
}

// Take records durably that the host took message id of conversation conv
// from platform, and the platform's cursor after it ("" leaves the cursor as
// it is). It does not wait: done is called once the record has committed,
// dup set when the id had been taken before.
func (s *Store) Take(platform, conv, id, cursor string, body []byte, done func(dup bool, err error)) {
	var dup bool
	o := &op{done: make(chan struct{}), fn: func(ctx context.Context, tx pgx.Tx) error {
		var inserted bool
		err := tx.QueryRow(ctx, `INSERT INTO inbox_taken (platform, conv, id, taken, body) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (platform, conv, id) DO NOTHING RETURNING true`, platform, conv, id, s.now(), body).Scan(&inserted)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			dup = true
		case err != nil:
			return fmt.Errorf("record message %q of %s: %w", id, platform, err)
		default:
			dup = false
		}
		if cursor != "" {
			if _, err := tx.Exec(ctx, `INSERT INTO inbox_cursors (platform, cursor) VALUES ($1, $2)
				ON CONFLICT (platform) DO UPDATE SET cursor = excluded.cursor`, platform, cursor); err != nil {
				return fmt.Errorf("record the cursor of %s: %w", platform, err)
			}
		}
		return nil
	}}
	s.queueAsync(o, func(err error) { done(dup, err) })
}

// Answered records that the message taken as platform/conv/id was
// answered: its body is dropped, its id kept for dedupe. It does not wait.
func (s *Store) Answered(platform, conv, id string) {
	o := &op{done: make(chan struct{}), sql: `UPDATE inbox_taken SET body = NULL
		WHERE platform = $1 AND conv = $2 AND id = $3 AND body IS NOT NULL`, args: []any{platform, conv, id}}
	s.queueAsync(o, func(err error) {
		if err != nil {
			s.log.Warn("could not record a message as answered", "platform", platform, "id", id, "error", err)
		}
	})
}

// Pending returns the bodies of platform's messages taken and not yet
// answered, oldest first.
func (s *Store) Pending(platform string) ([][]byte, error) {
	ctx, cancel := readCtx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT body FROM inbox_taken WHERE platform = $1 AND body IS NOT NULL
		ORDER BY taken, conv, id`, platform)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[[]byte])
}

// Cursor returns the last cursor recorded for platform, "" if none.
func (s *Store) Cursor(platform string) (string, error) {
	ctx, cancel := readCtx()
	defer cancel()
	var cur string
	err := s.pool.QueryRow(ctx, "SELECT cursor FROM inbox_cursors WHERE platform = $1", platform).Scan(&cur)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return cur, err
}

// pruneEvery is how often taken ids past their retention are removed.
const pruneEvery = time.Hour

// prune removes the taken ids older than the retention, now and then.
func (s *Store) pruneLoop() {
	defer s.pruneWG.Done()
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if _, err := s.pool.Exec(ctx, "DELETE FROM inbox_taken WHERE taken < $1", s.now().Add(-s.retention)); err != nil {
			s.log.Warn("could not prune taken message ids", "error", err)
		}
		cancel()
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
	}
}
