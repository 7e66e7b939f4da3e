package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plughost/gateway/host/store"
)

// expiredKept is how long an expired code is kept so that approving it
// says "expired" rather than "unknown" (as in the bbolt store).
const expiredKept = 24 * time.Hour

func getUser(ctx context.Context, q pgx.Tx, platform, user string, lock bool) (store.PairingUser, bool, error) {
	sql := "SELECT body FROM pairing_users WHERE platform = $1 AND user_id = $2"
	if lock {
		sql += " FOR UPDATE"
	}
	var body string
	err := q.QueryRow(ctx, sql, platform, user).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.PairingUser{}, false, nil
	}
	if err != nil {
		return store.PairingUser{}, false, err
	}
	var u store.PairingUser
	if err := json.Unmarshal([]byte(body), &u); err != nil {
		return u, true, fmt.Errorf("corrupt pairing user record: %w", err)
	}
	return u, true, nil
}

func putUser(ctx context.Context, tx pgx.Tx, u store.PairingUser) error {
	raw, err := json.Marshal(u)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO pairing_users (platform, user_id, body) VALUES ($1, $2, $3)
		ON CONFLICT (platform, user_id) DO UPDATE SET body = excluded.body`, u.Platform, u.UserID, string(raw))
	return err
}

// PairingUser returns the state of user on platform; ok is false when the
// store knows nothing of them.
func (s *Store) PairingUser(platform, user string) (u store.PairingUser, ok bool, err error) {
	ctx, cancel := readCtx()
	defer cancel()
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		u, ok, err = getUser(ctx, tx, platform, user, false)
		return err
	})
	if err != nil {
		return store.PairingUser{}, false, fmt.Errorf("pairing state of a user of %s: %w", platform, err)
	}
	return u, ok, nil
}

// IssuePairingCode durably records code for its user: the user's previous
// code is dropped, their LastCode and CodeSent are set, and codes expired
// long ago are pruned.
func (s *Store) IssuePairingCode(ctx context.Context, c store.PairingCode) error {
	cv, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("issue pairing code: %w", err)
	}
	return s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		u, _, err := getUser(ctx, tx, c.Platform, c.UserID, true)
		if err != nil {
			return fmt.Errorf("issue pairing code: %w", err)
		}
		if u.LastCode != "" {
			if _, err := tx.Exec(ctx, "DELETE FROM pairing_codes WHERE code = $1", u.LastCode); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "DELETE FROM pairing_codes WHERE expires < $1", c.Created.Add(-expiredKept)); err != nil {
			return err
		}
		u.Platform, u.UserID, u.LastCode, u.CodeSent = c.Platform, c.UserID, c.Code, c.Created
		if c.UserName != "" {
			u.UserName = c.UserName
		}
		if err := putUser(ctx, tx, u); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO pairing_codes (code, expires, body) VALUES ($1, $2, $3)
			ON CONFLICT (code) DO UPDATE SET expires = excluded.expires, body = excluded.body`, c.Code, c.Expires, string(cv))
		return err
	})
}

func getCode(ctx context.Context, tx pgx.Tx, code string, lock bool) (store.PairingCode, error) {
	sql := "SELECT body FROM pairing_codes WHERE code = $1"
	if lock {
		sql += " FOR UPDATE"
	}
	var c store.PairingCode
	var body string
	err := tx.QueryRow(ctx, sql, code).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, &refusal{store.ErrUnknownCode}
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		return c, fmt.Errorf("corrupt pairing code record: %w", err)
	}
	return c, nil
}

// ApprovePairingCode durably approves the user code was issued to, as of
// now, and uses the code up. It fails with store.ErrUnknownCode or a
// *store.ExpiredCodeError and then changes nothing.
func (s *Store) ApprovePairingCode(ctx context.Context, code string, now time.Time) (store.PairingCode, error) {
	var c store.PairingCode
	err := s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		if c, err = getCode(ctx, tx, code, true); err != nil {
			return err
		}
		if !now.Before(c.Expires) {
			return &refusal{&store.ExpiredCodeError{Code: code, Expired: c.Expires}}
		}
		u, _, err := getUser(ctx, tx, c.Platform, c.UserID, true)
		if err != nil {
			return err
		}
		u.Platform, u.UserID, u.Approved, u.LastCode = c.Platform, c.UserID, now, ""
		if c.UserName != "" {
			u.UserName = c.UserName
		}
		if err := putUser(ctx, tx, u); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "DELETE FROM pairing_codes WHERE code = $1", code)
		return err
	})
	return c, unwrapRefusal(err)
}

// unwrapRefusal returns the error a refusal carries, so that callers see
// the bbolt store's errors exactly (errors.Is and errors.As work either way).
func unwrapRefusal(err error) error {
	var r *refusal
	if errors.As(err, &r) {
		return r.err
	}
	return err
}

// RevokePairing durably withdraws the approval of user on platform; it
// fails with store.ErrNotPaired when they are not approved.
func (s *Store) RevokePairing(ctx context.Context, platform, user string) error {
	err := s.write(ctx, func(ctx context.Context, tx pgx.Tx) error {
		u, _, err := getUser(ctx, tx, platform, user, true)
		if err != nil {
			return err
		}
		if !u.IsApproved() {
			return &refusal{store.ErrNotPaired}
		}
		u.Approved = time.Time{}
		return putUser(ctx, tx, u)
	})
	return unwrapRefusal(err)
}

// PairingCodes returns every pairing code kept, expired ones included.
func (s *Store) PairingCodes() ([]store.PairingCode, error) {
	ctx, cancel := readCtx()
	defer cancel()
	rows, err := s.pool.Query(ctx, "SELECT body FROM pairing_codes ORDER BY code")
	if err != nil {
		return nil, err
	}
	bodies, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var out []store.PairingCode
	for _, b := range bodies {
		var c store.PairingCode
		if err := json.Unmarshal([]byte(b), &c); err != nil {
			return nil, fmt.Errorf("corrupt pairing code record: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// ApprovedUsers returns every approved user of every platform.
func (s *Store) ApprovedUsers() ([]store.PairingUser, error) {
	ctx, cancel := readCtx()
	defer cancel()
	rows, err := s.pool.Query(ctx, "SELECT body FROM pairing_users ORDER BY platform, user_id")
	if err != nil {
		return nil, err
	}
	bodies, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var out []store.PairingUser
	for _, b := range bodies {
		var u store.PairingUser
		if err := json.Unmarshal([]byte(b), &u); err != nil {
			return nil, fmt.Errorf("corrupt pairing user record: %w", err)
		}
		if u.IsApproved() {
			out = append(out, u)
		}
	}
	return out, nil
}

// RecordUsage durably appends r.
func (s *Store) RecordUsage(ctx context.Context, r store.UsageRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("record usage: %w", err)
	}
	return s.writeStmt(ctx, nil, "INSERT INTO usage (at_ns, body) VALUES ($1, $2)", r.Time.UnixNano(), string(v))
}

// Usage calls fn with every usage record from since on, oldest first.
func (s *Store) Usage(since time.Time, fn func(store.UsageRecord) error) error {
	ctx, cancel := readCtx()
	defer cancel()
	rows, err := s.pool.Query(ctx, "SELECT at_ns, body FROM usage WHERE at_ns >= $1 ORDER BY at_ns, id", max(since.UnixNano(), 0))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var at int64
		var body string
		if err := rows.Scan(&at, &body); err != nil {
			return err
		}
		var r store.UsageRecord
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			return fmt.Errorf("corrupt usage record: %w", err)
		}
		r.Time = time.Unix(0, at).UTC()
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}
