package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/shared"
)

// maxKeyLen matches the bbolt store's, so that a key one takes the other
// takes too.
const maxKeyLen = 32 << 10

// readTimeout bounds a read.
const readTimeout = 30 * time.Second

func readCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), readTimeout)
}

const sessionCols = "model, created, updated, epoch, messages"

func scanSession(row pgx.Row, key string) (store.Session, error) {
	sess := store.Session{Key: key}
	var msgs int64
	var epoch int64
	err := row.Scan(&sess.Model, &sess.Created, &sess.Updated, &epoch, &msgs)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Session{Key: key}, nil
	}
	if err != nil {
		return sess, fmt.Errorf("session %s: %w", shared.LogValue(key), err)
	}
	sess.Epoch, sess.Messages = uint64(epoch), int(msgs)
	return sess, nil
}

// Session returns the metadata of key.
func (s *Store) Session(key string) (store.Session, error) {
	ctx, cancel := readCtx()
	defer cancel()
	return scanSession(s.pool.QueryRow(ctx, "SELECT "+sessionCols+" FROM sessions WHERE key = $1", key), key)
}

// History returns the session and the last limit delivered messages of its
// current transcript, oldest first; limit ≤ 0 returns none.
func (s *Store) History(key string, limit int) (store.Session, []store.Message, error) {
	ctx, cancel := readCtx()
	defer cancel()
	var sess store.Session
	var msgs []store.Message
	// One snapshot for both, as bbolt's View gives.
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		if sess, err = scanSession(tx.QueryRow(ctx, "SELECT "+sessionCols+" FROM sessions WHERE key = $1", key), key); err != nil {
			return err
		}
		msgs, err = readTail(ctx, tx, key, sess.Epoch, limit)
		return err
	})
	return sess, msgs, err
}

// Transcript returns the whole transcript of epoch (current or archived).
func (s *Store) Transcript(key string, epoch uint64) ([]store.Message, error) {
	ctx, cancel := readCtx()
	defer cancel()
	return readTail(ctx, s.pool, key, epoch, -1)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// readTail returns the last limit delivered messages of an epoch, oldest
// first; all of them, undelivered included, when limit < 0.
func readTail(ctx context.Context, q querier, key string, epoch uint64, limit int) ([]store.Message, error) {
	if limit == 0 || key == "" || len(key) > maxKeyLen {
		return nil, nil
	}
	sql := `SELECT seq, body FROM (SELECT seq, body FROM messages WHERE key = $1 AND epoch = $2
		AND ($3 < 0 OR body NOT LIKE '%"undelivered":true%') ORDER BY seq DESC LIMIT CASE WHEN $3 < 0 THEN NULL ELSE $3 END) t ORDER BY seq`
	rows, err := q.Query(ctx, sql, key, int64(epoch), limit)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", shared.LogValue(key), err)
	}
	defer rows.Close()
	msgs := []store.Message{}
	for rows.Next() {
		var seq int64
		var body string
		if err := rows.Scan(&seq, &body); err != nil {
			return nil, err
		}
		var m store.Message
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			return nil, fmt.Errorf("session %s: corrupt message %d: %w", shared.LogValue(key), seq, err)
		}
		if m.Undelivered && limit >= 0 {
			continue
		}
		msgs = append(msgs, m)
	}
	return msgs, rows.Err()
}

// Keys returns every session key.
func (s *Store) Keys() ([]string, error) {
	ctx, cancel := readCtx()
	defer cancel()
	rows, err := s.pool.Query(ctx, "SELECT key FROM sessions ORDER BY key")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func checkKey(what, key string) error {
	if key == "" || len(key) > maxKeyLen {
		return fmt.Errorf("%s: %w: %d bytes (want 1 to %d)", what, store.ErrInvalidKey, len(key), maxKeyLen)
	}
	return nil
}

// AppendTurn durably appends a user message and what followed it to the
// transcript of epoch; it returns once the turn has committed. A turn whose
// epoch was archived meanwhile goes to that archive.
func (s *Store) AppendTurn(ctx context.Context, key string, epoch uint64, user store.Message, rest ...store.Message) error {
	if err := checkKey("append turn", key); err != nil {
		return err
	}
	bodies := make([]string, 0, 1+len(rest))
	for _, m := range append([]store.Message{user}, rest...) {
		raw, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("append turn: %w", err)
		}
		bodies = append(bodies, string(raw))
	}
	// One statement: the session row (created at epoch 0 only) is locked,
	// counted and its next_seq advanced, and the messages take the numbers
	// it handed out, so writers of one session on several hosts never
	// collide. A turn for an epoch newer than the session's changes nothing
	// and returns no row.
	return s.writeStmt(ctx, func(row pgx.Row) error {
		var cur int64
		err := row.Scan(&cur)
		if errors.Is(err, pgx.ErrNoRows) {
			return &refusal{fmt.Errorf("append turn to %s: epoch %d is newer than the session's", shared.LogValue(key), epoch)}
		}
		if err != nil {
			return fmt.Errorf("append turn to %s: %w", shared.LogValue(key), err)
		}
		return nil
	}, `WITH s AS (
		INSERT INTO sessions AS x (key, created, updated, messages, next_seq)
		SELECT $1, $2, $2, $5, $5 WHERE $3 = 0 OR EXISTS (SELECT 1 FROM sessions WHERE key = $1)
		ON CONFLICT (key) DO UPDATE SET updated = excluded.updated,
			messages = x.messages + CASE WHEN x.epoch = $3 THEN $5 ELSE 0 END,
			next_seq = x.next_seq + $5
		WHERE x.epoch >= $3
		RETURNING x.epoch, x.next_seq
	), ins AS (
		INSERT INTO messages (key, epoch, seq, body)
		SELECT $1, $3, s.next_seq - $5 + u.ord - 1, u.body
		FROM s, unnest($4::text[]) WITH ORDINALITY AS u(body, ord)
	)
	SELECT epoch FROM s`, key, s.now(), int64(epoch), bodies, int64(len(bodies)))
}

// undeliveredScan bounds how far back MarkUndelivered looks for the turn.
const undeliveredScan = 64

// MarkUndelivered durably marks the turn of epoch whose user message was
// asked at asked as undelivered, all its messages.
func (s *Store) MarkUndelivered(ctx context.Context, key string, epoch uint64, asked time.Time) error {
	if key == "" || len(key) > maxKeyLen {
		return fmt.Errorf("mark undelivered: session key of %d bytes (want 1 to %d)", len(key), maxKeyLen)
	}
	return s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT seq, body FROM messages WHERE key = $1 AND epoch = $2
			ORDER BY seq DESC LIMIT $3 FOR UPDATE`, key, int64(epoch), undeliveredScan)
		if err != nil {
			return fmt.Errorf("mark undelivered in %s: %w", shared.LogValue(key), err)
		}
		type row struct {
			seq int64
			m   store.Message
		}
		var newest []row // newest first
		for rows.Next() {
			var r row
			var body string
			if err := rows.Scan(&r.seq, &body); err != nil {
				rows.Close()
				return err
			}
			if err := json.Unmarshal([]byte(body), &r.m); err != nil {
				rows.Close()
				return fmt.Errorf("mark undelivered in %s: %w", shared.LogValue(key), err)
			}
			newest = append(newest, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i, r := range newest {
			if r.m.Role != "user" || !r.m.Time.Equal(asked) {
				continue
			}
			for j := i; j >= 0; j-- {
				m := newest[j].m
				if j < i && m.Role == "user" {
					break // the next turn
				}
				m.Undelivered = true
				raw, err := json.Marshal(m)
				if err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, "UPDATE messages SET body = $4 WHERE key = $1 AND epoch = $2 AND seq = $3",
					key, int64(epoch), newest[j].seq, string(raw)); err != nil {
					return fmt.Errorf("mark undelivered in %s: %w", shared.LogValue(key), err)
				}
			}
			return nil
		}
		return nil
	})
}

// SetModel durably sets the session's model override ("" clears it).
func (s *Store) SetModel(ctx context.Context, key, model string) error {
	if err := checkKey("update session", key); err != nil {
		return err
	}
	return s.writeStmt(ctx, nil, `INSERT INTO sessions (key, created, updated, model) VALUES ($1, $2, $2, $3)
		ON CONFLICT (key) DO UPDATE SET updated = excluded.updated, model = excluded.model`, key, s.now(), model)
}

// Reset archives the current transcript and starts an empty one (/new).
func (s *Store) Reset(ctx context.Context, key string) error {
	if err := checkKey("update session", key); err != nil {
		return err
	}
	return s.writeStmt(ctx, nil, `INSERT INTO sessions (key, created, updated, epoch) VALUES ($1, $2, $2, 1)
		ON CONFLICT (key) DO UPDATE SET updated = excluded.updated, epoch = sessions.epoch + 1, messages = 0`, key, s.now())
}
