// Package store keeps sessions durably: per session key a transcript, a
// per-session model override and created/updated times, in a bbolt file in
// the gateway's state directory.
//
// Layout: bucket "sessions" maps a session key to its JSON metadata; bucket
// "messages" maps len(key) ‖ key ‖ epoch ‖ seq (big-endian) to one JSON
// message, so a transcript is one contiguous, ordered key range and pages are
// packed with the messages of many sessions (a bucket per session would cost
// at least a page each). /new (Reset) starts a new epoch: the old range stays
// as the archive and nothing is copied.
//
// Every write goes through one committer goroutine that batches the writes
// queued while the previous transaction was being fsynced into a single
// transaction (group commit): a lone write commits at once, and under load
// one fsync acknowledges many writes, so durability does not cap throughput.
//
// Durability is a setting (store { sync = ... }): "always" (the default)
// returns a write once its commit is fsynced (bbolt does two fdatasyncs per
// commit: data pages, then the meta page); a duration returns it once it is
// written to the file and fsyncs within that interval, so a crashed process
// loses nothing and a power loss what was written since the last fsync.
// bbolt is not a write-ahead log: a power loss between fsyncs can also leave
// the file needing the last good meta page (bbolt keeps two), which is why
// "always" is the default; a store whose commit is one log append and one
// fsync (SQLite in WAL mode, Pebble) would make the interval cost-free to
// get right, and is the next step if the durable figure must go up.
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"

	"github.com/plughost/gateway/shared"
)

// FileName is the store's file name inside the state directory.
const FileName = "sessions.db"

var (
	bucketSessions = []byte("sessions")
	bucketMessages = []byte("messages")
)

// ErrClosed is returned by operations on a closed store.
var ErrClosed = errors.New("session store closed")

// ErrInvalidKey is returned for a session key the store cannot hold (empty
// or longer than it allows), before anything is queued: a write that
// fails inside a group commit would make its neighbours commit one by one.
var ErrInvalidKey = errors.New("invalid session key")

// Message is one transcript entry.
type Message struct {
	Role    string    `json:"role"` // "user" or "assistant"
	Content string    `json:"content"`
	Time    time.Time `json:"time"`
	// Undelivered marks a turn whose reply never reached the user (the
	// platform gave up, the send failed): it stays in the transcript but
	// is left out of the history the model is sent.
	Undelivered bool `json:"undelivered,omitempty"`
	// ToolCalls are the tool calls an assistant message asked for, as the
	// chat completions API writes them (JSON array); ToolCallID names the
	// call a "tool" message answers.
	ToolCalls  json.RawMessage `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

// Session is a session's metadata.
type Session struct {
	Key string `json:"-"`
	// Model is the per-session model override, "" for the configured default.
	Model   string    `json:"model,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Epoch numbers the current transcript; Reset increments it and the
	// earlier epochs are the archived transcripts.
	Epoch uint64 `json:"epoch"`
	// Messages is the length of the current transcript.
	Messages int `json:"messages"`
}

// Exists reports whether the session has ever been written.
func (s Session) Exists() bool { return !s.Created.IsZero() }

// Options tunes a Store.
type Options struct {
	Logger hclog.Logger
	// MaxBatch caps the writes in one group commit; default 512.
	MaxBatch int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// TakenRetention is how long taken message ids are remembered for
	// dedupe; default DefaultTakenRetention.
	TakenRetention time.Duration
	// SyncInterval is 0 to fsync every group commit before its writers
	// return (sync = "always"). Otherwise a commit returns once it is
	// written to the file, without fsync, and the file is fsynced at most
	// SyncInterval later: a crash of the process loses nothing; a power
	// loss may lose (and, bbolt not being a write-ahead log, may damage)
	// what was written since the last fsync.
	SyncInterval time.Duration
	// ProbeInterval is how often a failing store tries a write;
	// DefaultProbeInterval if 0.
	ProbeInterval time.Duration
}

// Store is an open session store. It is safe for concurrent use.
type Store struct {
	db       *bolt.DB
	log      hclog.Logger
	now      func() time.Time
	maxBatch int
	// retention is how long taken message ids are kept (see Take).
	retention time.Duration
	// syncEvery is Options.SyncInterval; dirty says a commit since the
	// last fsync (committer goroutine only).
	syncEvery time.Duration
	dirty     bool

	ops  chan *op
	quit chan struct{}
	done chan struct{}

	mu     sync.RWMutex // guards closed against sends on ops
	closed bool

	statsMu sync.Mutex
	stats   CommitStats

	health     health
	probeEvery time.Duration
	path       string // the file, for statfs (db.Path races with Close)
}

// CommitStats counts group commits.
type CommitStats struct {
	// Writes is the number of writes committed.
	Writes uint64
	// Commits is the number of transactions (fsyncs) that carried them.
	Commits uint64
}

// Open opens (creating if needed) the store at path. The folder is created
// with mode 0700.
func Open(path string, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	// The freelist is not written at each commit (one page less to write
	// per transaction); Open rebuilds it by scanning the file instead, which
	// also makes a file left by a crash (SIGKILL) open like a clean one.
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        5 * time.Second,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// A link planted at the store's name is never followed.
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			return os.OpenFile(name, flag|syscall.O_NOFOLLOW, perm)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("open session store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSessions, bucketMessages, bucketTaken, bucketTakenAge, bucketCursors} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise session store %s: %w", path, err)
	}
	s := &Store{
		db:       db,
		log:      opts.Logger,
		now:      opts.Now,
		maxBatch: opts.MaxBatch,
		ops:      make(chan *op, 1024),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxBatch <= 0 {
		s.maxBatch = 512
	}
	s.syncEvery = opts.SyncInterval
	db.NoSync = s.syncEvery > 0
	s.retention = opts.TakenRetention
	if s.retention <= 0 {
		s.retention = DefaultTakenRetention
	}
	if err := db.Update(s.pruneTaken); err != nil {
		db.Close()
		return nil, fmt.Errorf("prune taken message ids in %s: %w", path, err)
	}
	s.path = path
	s.probeEvery = opts.ProbeInterval
	if s.probeEvery <= 0 {
		s.probeEvery = DefaultProbeInterval
	}
	s.health.since = s.now()
	s.health.probeStop = make(chan struct{})
	go s.commitLoop()
	return s, nil
}

// Close waits for queued writes to commit, then closes the file.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	<-s.done
	if s.syncEvery > 0 {
		if err := s.db.Sync(); err != nil {
			s.log.Error("could not fsync the session store at close", "error", err)
		}
	}
	s.stopProbe()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close session store: %w", err)
	}
	return nil
}

// Stats returns the group commit counters.
func (s *Store) Stats() CommitStats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// Session returns the metadata of key; a session never written has a zero
// Created time (see Session.Exists).
func (s *Store) Session(key string) (Session, error) {
	var sess Session
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		sess, err = getSession(tx, key)
		return err
	})
	return sess, err
}

// History returns the session and the last limit messages of its current
// transcript, oldest first. limit ≤ 0 returns none.
func (s *Store) History(key string, limit int) (Session, []Message, error) {
	var sess Session
	var msgs []Message
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		if sess, err = getSession(tx, key); err != nil {
			return err
		}
		msgs, err = readTail(tx, key, sess.Epoch, limit)
		return err
	})
	return sess, msgs, err
}

// Transcript returns the whole transcript of epoch (current or archived).
func (s *Store) Transcript(key string, epoch uint64) ([]Message, error) {
	var msgs []Message
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		msgs, err = readTail(tx, key, epoch, -1)
		return err
	})
	return msgs, err
}

// Keys returns every session key (for tools and tests).
func (s *Store) Keys() ([]string, error) {
	var keys []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	return keys, err
}

// AppendTurn durably appends a user message and what followed it (the
// assistant's tool calls and their results, then its reply) to the
// transcript of epoch. It returns once the turn is fsynced. A turn whose epoch was
// archived by Reset meanwhile goes to that archive, where it belongs.
func (s *Store) AppendTurn(ctx context.Context, key string, epoch uint64, user Message, rest ...Message) error {
	if key == "" || len(key) > maxKeyLen {
		return fmt.Errorf("append turn: %w: %d bytes (want 1 to %d)", ErrInvalidKey, len(key), maxKeyLen)
	}
	encoded := make([][]byte, 0, 1+len(rest))
	for _, m := range append([]Message{user}, rest...) {
		raw, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("append turn: %w", err)
		}
		encoded = append(encoded, raw)
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		sess, err := getSession(tx, key)
		if err != nil {
			return err
		}
		now := s.now()
		if !sess.Exists() {
			sess.Created = now
		}
		if epoch > sess.Epoch {
			return fmt.Errorf("append turn to %s: epoch %d is newer than the session's %d", shared.LogValue(key), epoch, sess.Epoch)
		}
		b := tx.Bucket(bucketMessages)
		seq := nextSeq(b, key, epoch)
		for _, v := range encoded {
			if err := b.Put(msgKey(key, epoch, seq), v); err != nil {
				return fmt.Errorf("append turn to %s: %w", shared.LogValue(key), err)
			}
			seq++
		}
		if epoch == sess.Epoch {
			sess.Messages += len(encoded)
		}
		sess.Updated = now
		return putSession(tx, key, sess)
	})
}

// undeliveredScan bounds how far back MarkUndelivered looks for the turn.
const undeliveredScan = 64

// MarkUndelivered durably marks the turn of epoch whose user message was
// asked at asked (AppendTurn's user.Time) as undelivered, both its
// messages. History leaves it out from then on; Transcript keeps it. A
// turn it cannot find (archived further back) is left alone.
func (s *Store) MarkUndelivered(ctx context.Context, key string, epoch uint64, asked time.Time) error {
	if key == "" || len(key) > maxKeyLen {
		return fmt.Errorf("mark undelivered: session key of %d bytes (want 1 to %d)", len(key), maxKeyLen)
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMessages)
		c := b.Cursor()
		prefix, k, v := lastInRange(c, key, epoch)
		// Walk back: the assistant's reply (after any tool turns) comes
		// right after its user message.
		var after [][]byte // the keys after k, newest first
		for n := 0; k != nil && bytes.HasPrefix(k, prefix) && n < undeliveredScan; n++ {
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("mark undelivered in %q: %w", key, err)
			}
			if m.Role == "user" && m.Time.Equal(asked) {
				keys := [][]byte{bytes.Clone(k)}
				for i := len(after) - 1; i >= 0; i-- {
					keys = append(keys, after[i])
				}
				for i, mk := range keys {
					var msg Message
					if err := json.Unmarshal(b.Get(mk), &msg); err != nil {
						return fmt.Errorf("mark undelivered in %q: %w", key, err)
					}
					if i > 0 && msg.Role == "user" {
						break // the next turn
					}
					msg.Undelivered = true
					raw, err := json.Marshal(msg)
					if err != nil {
						return err
					}
					if err := b.Put(mk, raw); err != nil {
						return fmt.Errorf("mark undelivered in %q: %w", key, err)
					}
				}
				return nil
			}
			after = append(after, bytes.Clone(k))
			k, v = c.Prev()
		}
		return nil
	})
}

// SetModel durably sets the session's model override ("" clears it).
func (s *Store) SetModel(ctx context.Context, key, model string) error {
	return s.update(ctx, key, func(sess *Session) { sess.Model = model })
}

// Reset archives the current transcript and starts an empty one (/new). The
// model override is kept.
func (s *Store) Reset(ctx context.Context, key string) error {
	return s.update(ctx, key, func(sess *Session) {
		sess.Epoch++
		sess.Messages = 0
	})
}

func (s *Store) update(ctx context.Context, key string, fn func(*Session)) error {
	if key == "" || len(key) > maxKeyLen {
		return fmt.Errorf("update session: %w: %d bytes (want 1 to %d)", ErrInvalidKey, len(key), maxKeyLen)
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		sess, err := getSession(tx, key)
		if err != nil {
			return err
		}
		now := s.now()
		if !sess.Exists() {
			sess.Created = now
		}
		fn(&sess)
		sess.Updated = now
		return putSession(tx, key, sess)
	})
}

func getSession(tx *bolt.Tx, key string) (Session, error) {
	sess := Session{Key: key}
	v := tx.Bucket(bucketSessions).Get([]byte(key))
	if v == nil {
		return sess, nil
	}
	if err := json.Unmarshal(v, &sess); err != nil {
		return sess, fmt.Errorf("session %s: corrupt metadata: %w", shared.LogValue(key), err)
	}
	sess.Key = key
	return sess, nil
}

func putSession(tx *bolt.Tx, key string, sess Session) error {
	v, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketSessions).Put([]byte(key), v)
}
