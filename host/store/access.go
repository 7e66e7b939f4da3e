package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The buckets of the access policy (host/access), created on first write:
// "pairing_codes" maps a pairing code to its PairingCode; "pairing_users"
// maps platform ‖ 0 ‖ user id to the PairingUser; "usage" maps
// time (unix ns) ‖ sequence, big-endian, to one UsageRecord, so a time range
// is one contiguous key range.
var (
	bucketPairingCodes = []byte("pairing_codes")
	bucketPairingUsers = []byte("pairing_users")
	bucketUsage        = []byte("usage")
)

// ErrUnknownCode is returned for a pairing code that was never issued (or
// was already used, or pruned long after it expired).
var ErrUnknownCode = errors.New("unknown pairing code")

// ErrNotPaired is returned when revoking a user who is not approved.
var ErrNotPaired = errors.New("not an approved user")

// ExpiredCodeError is returned for a pairing code past its expiry.
type ExpiredCodeError struct {
	Code    string
	Expired time.Time
}

func (e *ExpiredCodeError) Error() string {
	return fmt.Sprintf("pairing code %s expired at %s", e.Code, e.Expired.UTC().Format(time.RFC3339))
}

// expiredKept is how long an expired code is kept so that approving it
// says "expired" rather than "unknown".
const expiredKept = 24 * time.Hour

// PairingCode is a code issued to an unknown user who wrote a direct
// message, waiting for the operator's approval.
type PairingCode struct {
	Code     string `json:"code"`
	Platform string `json:"platform"`
	UserID   string `json:"user_id"`
	UserName string `json:"user_name,omitempty"`
	// ConversationID is the user's DM conversation: the approval is
	// announced there.
	ConversationID string    `json:"conversation_id"`
	Created        time.Time `json:"created"`
	Expires        time.Time `json:"expires"`
}

// PairingUser is what the store knows of one user of one platform under
// the pairing policy.
type PairingUser struct {
	Platform string `json:"platform"`
	UserID   string `json:"user_id"`
	UserName string `json:"user_name,omitempty"`
	// LastCode and CodeSent are the last code the user was sent, and when.
	LastCode string    `json:"last_code,omitempty"`
	CodeSent time.Time `json:"code_sent,omitempty"`
	// Approved is when the operator approved the user; zero when not (or
	// revoked since).
	Approved time.Time `json:"approved,omitempty"`
}

// IsApproved reports whether the user is approved.
func (u PairingUser) IsApproved() bool { return !u.Approved.IsZero() }

func pairingUserKey(platform, user string) []byte {
	k := make([]byte, 0, len(platform)+1+len(user))
	k = append(k, platform...)
	k = append(k, 0)
	return append(k, user...)
}

// PairingUser returns the state of user on platform; ok is false when the
// store knows nothing of them.
func (s *Store) PairingUser(platform, user string) (u PairingUser, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPairingUsers)
		if b == nil {
			return nil
		}
		v := b.Get(pairingUserKey(platform, user))
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &u)
	})
	if err != nil {
		return PairingUser{}, false, fmt.Errorf("pairing state of a user of %s: %w", platform, err)
	}
	return u, ok, nil
}

// IssuePairingCode durably records code for its user: the user's previous
// code is dropped, their LastCode and CodeSent are set, and codes expired
// long ago are pruned.
func (s *Store) IssuePairingCode(ctx context.Context, c PairingCode) error {
	cv, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("issue pairing code: %w", err)
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		codes, users, err := pairingBuckets(tx)
		if err != nil {
			return err
		}
		key := pairingUserKey(c.Platform, c.UserID)
		var u PairingUser
		if v := users.Get(key); v != nil {
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("issue pairing code: corrupt user record: %w", err)
			}
		}
		if u.LastCode != "" {
			if err := codes.Delete([]byte(u.LastCode)); err != nil {
				return err
			}
		}
		if err := pruneCodes(codes, c.Created); err != nil {
			return err
		}
		u.Platform, u.UserID, u.LastCode, u.CodeSent = c.Platform, c.UserID, c.Code, c.Created
		if c.UserName != "" {
			u.UserName = c.UserName
		}
		if err := putJSON(users, key, u); err != nil {
			return err
		}
		return codes.Put([]byte(c.Code), cv)
	})
}

// pruneCodes deletes the codes that expired more than expiredKept before now.
func pruneCodes(codes *bolt.Bucket, now time.Time) error {
	var old [][]byte
	err := codes.ForEach(func(k, v []byte) error {
		var c PairingCode
		if json.Unmarshal(v, &c) != nil || now.Sub(c.Expires) > expiredKept {
			old = append(old, append([]byte(nil), k...))
		}
		return nil
	})
	for _, k := range old {
		if err == nil {
			err = codes.Delete(k)
		}
	}
	return err
}

// ApprovePairingCode durably approves the user code was issued to, as of
// now, and uses the code up. It fails with ErrUnknownCode or an
// *ExpiredCodeError and then changes nothing.
func (s *Store) ApprovePairingCode(ctx context.Context, code string, now time.Time) (PairingCode, error) {
	var c PairingCode
	// Checked first outside the write too: a refused write would make its
	// group commit fall back to committing its neighbours one by one.
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPairingCodes)
		if b == nil || b.Get([]byte(code)) == nil {
			return ErrUnknownCode
		}
		if err := json.Unmarshal(b.Get([]byte(code)), &c); err == nil && !now.Before(c.Expires) {
			return &ExpiredCodeError{Code: code, Expired: c.Expires}
		}
		return nil
	})
	if err != nil {
		return c, err
	}
	err = s.write(ctx, func(tx *bolt.Tx) error {
		codes, users, err := pairingBuckets(tx)
		if err != nil {
			return err
		}
		v := codes.Get([]byte(code))
		if v == nil {
			return ErrUnknownCode
		}
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("corrupt pairing code record: %w", err)
		}
		if !now.Before(c.Expires) {
			return &ExpiredCodeError{Code: code, Expired: c.Expires}
		}
		key := pairingUserKey(c.Platform, c.UserID)
		var u PairingUser
		if v := users.Get(key); v != nil {
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("corrupt pairing user record: %w", err)
			}
		}
		u.Platform, u.UserID, u.Approved, u.LastCode = c.Platform, c.UserID, now, ""
		if c.UserName != "" {
			u.UserName = c.UserName
		}
		if err := putJSON(users, key, u); err != nil {
			return err
		}
		return codes.Delete([]byte(code))
	})
	return c, err
}

// RevokePairing durably withdraws the approval of user on platform; it
// fails with ErrNotPaired when they are not approved.
func (s *Store) RevokePairing(ctx context.Context, platform, user string) error {
	if u, _, err := s.PairingUser(platform, user); err != nil {
		return err
	} else if !u.IsApproved() {
		return ErrNotPaired
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		_, users, err := pairingBuckets(tx)
		if err != nil {
			return err
		}
		key := pairingUserKey(platform, user)
		v := users.Get(key)
		var u PairingUser
		if v != nil {
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("corrupt pairing user record: %w", err)
			}
		}
		if !u.IsApproved() {
			return ErrNotPaired
		}
		u.Approved = time.Time{}
		return putJSON(users, key, u)
	})
}

// PairingCodes returns every pairing code kept, expired ones included.
func (s *Store) PairingCodes() ([]PairingCode, error) {
	var out []PairingCode
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPairingCodes)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var c PairingCode
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("corrupt pairing code record: %w", err)
			}
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

// ApprovedUsers returns every approved user of every platform.
func (s *Store) ApprovedUsers() ([]PairingUser, error) {
	var out []PairingUser
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPairingUsers)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var u PairingUser
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("corrupt pairing user record: %w", err)
			}
			if u.IsApproved() {
				out = append(out, u)
			}
			return nil
		})
	})
	return out, err
}

func pairingBuckets(tx *bolt.Tx) (codes, users *bolt.Bucket, err error) {
	if codes, err = tx.CreateBucketIfNotExists(bucketPairingCodes); err != nil {
		return nil, nil, err
	}
	users, err = tx.CreateBucketIfNotExists(bucketPairingUsers)
	return codes, users, err
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

// UsageRecord is the token usage of one turn.
type UsageRecord struct {
	Time             time.Time `json:"-"`
	Platform         string    `json:"platform"`
	Agent            string    `json:"agent"`
	UserID           string    `json:"user_id"`
	PromptTokens     int64     `json:"prompt_tokens"`
	CompletionTokens int64     `json:"completion_tokens"`
}

// RecordUsage durably appends r.
func (s *Store) RecordUsage(ctx context.Context, r UsageRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("record usage: %w", err)
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketUsage)
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		k := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(r.Time.UnixNano()))
		return b.Put(binary.BigEndian.AppendUint64(k, seq), v)
	})
}

// Usage calls fn with every usage record from since on, oldest first.
func (s *Store) Usage(since time.Time, fn func(UsageRecord) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsage)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		start := binary.BigEndian.AppendUint64(nil, uint64(max(since.UnixNano(), 0)))
		for k, v := c.Seek(start); k != nil; k, v = c.Next() {
			if len(k) != 16 {
				continue
			}
			var r UsageRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("corrupt usage record: %w", err)
			}
			r.Time = time.Unix(0, int64(binary.BigEndian.Uint64(k))).UTC()
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	})
}
