package store

import (
	"context"
	"time"
)

// Backend is the session store as the host uses it: transcripts and
// per-session settings, the access policy's pairing state and token usage.
// *Store (bbolt, one machine) and pgstore.Store (PostgreSQL, shared by
// several hosts) implement it; storetest runs one conformance suite against
// both.
//
// Every write returns once it is durable (committed); writes queued
// together are committed together (group commit).
type Backend interface {
	// Session returns the metadata of key; a session never written has a
	// zero Created time (see Session.Exists).
	Session(key string) (Session, error)
	// History returns the session and the last limit delivered messages of
	// its current transcript, oldest first.
	History(key string, limit int) (Session, []Message, error)
	// Transcript returns the whole transcript of epoch, undelivered turns
	// included.
	Transcript(key string, epoch uint64) ([]Message, error)
	// Keys returns every session key.
	Keys() ([]string, error)
	// AppendTurn durably appends a user message and what followed it to
	// the transcript of epoch.
	AppendTurn(ctx context.Context, key string, epoch uint64, user Message, rest ...Message) error
	// MarkUndelivered durably marks the turn asked at asked as undelivered.
	MarkUndelivered(ctx context.Context, key string, epoch uint64, asked time.Time) error
	// SetModel durably sets the session's model override.
	SetModel(ctx context.Context, key, model string) error
	// Reset archives the current transcript and starts an empty one.
	Reset(ctx context.Context, key string) error
	// Flush returns once every write queued before it has committed or failed.
	Flush(ctx context.Context) error

	// PairingUser returns the pairing state of user on platform.
	PairingUser(platform, user string) (PairingUser, bool, error)
	// IssuePairingCode durably records a pairing code for its user.
	IssuePairingCode(ctx context.Context, c PairingCode) error
	// ApprovePairingCode durably approves the user a code was issued to.
	ApprovePairingCode(ctx context.Context, code string, now time.Time) (PairingCode, error)
	// RevokePairing durably withdraws a user's approval.
	RevokePairing(ctx context.Context, platform, user string) error
	// PairingCodes returns every pairing code kept.
	PairingCodes() ([]PairingCode, error)
	// ApprovedUsers returns every approved user of every platform.
	ApprovedUsers() ([]PairingUser, error)
	// RecordUsage durably appends a usage record.
	RecordUsage(ctx context.Context, r UsageRecord) error
	// Usage calls fn with every usage record from since on, oldest first.
	Usage(since time.Time, fn func(UsageRecord) error) error

	// Take records durably that the host took a message (and the
	// platform's cursor after it), then calls done; dup reports an id taken
	// before. It does not wait.
	Take(platform, conv, id, cursor string, body []byte, done func(dup bool, err error))
	// Answered records that a taken message was answered. It does not wait.
	Answered(platform, conv, id string)
	// Pending returns the bodies of platform's messages taken and not
	// answered.
	Pending(platform string) ([][]byte, error)
	// Cursor returns the last cursor recorded for platform, "" if none.
	Cursor(platform string) (string, error)

	// Stats returns the group commit counters.
	Stats() CommitStats
	// Health returns the store's write health.
	Health() Health
	// Close waits for queued writes to commit, then closes the store.
	Close() error
}

var _ Backend = (*Store)(nil)
