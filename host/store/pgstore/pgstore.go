// Package pgstore is the session store in PostgreSQL, for several hosts
// that share their conversations (store { type = "postgres" }): the same
// store.Backend as the embedded bbolt store, so that a conversation
// continues on whichever host answers it.
//
// The schema is created and migrated by the host on start: migrations are
// numbered, each applied once in its own transaction and recorded in
// gateway_schema, under an advisory lock so that hosts starting together
// migrate once.
//
// Durability is the bbolt store's: a write returns once its transaction has
// committed (synchronous_commit as the server has it, on by default). Every
// write goes through one committer goroutine that runs the writes queued
// while the previous transaction committed in one transaction (group commit),
// so one WAL flush acknowledges many turns. A write that fails makes its
// batch roll back and the others commit one by one, as in bbolt.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/plughost/gateway/host/store"
)

// Options tune a Store.
type Options struct {
	Logger hclog.Logger
	// MaxBatch caps the writes in one group commit; default 512.
	MaxBatch int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// ProbeInterval is how often a failing store tries a write;
	// store.DefaultProbeInterval if 0.
	ProbeInterval time.Duration
	// ConnectTimeout bounds connecting at Open; default 15s.
	ConnectTimeout time.Duration
	// TakenRetention is how long taken message ids are remembered for
	// dedupe; store.DefaultTakenRetention if 0.
	TakenRetention time.Duration
}

// Store is an open PostgreSQL session store. It is safe for concurrent use.
type Store struct {
	pool     *pgxpool.Pool
	log      hclog.Logger
	now      func() time.Time
	maxBatch int

	ops  chan *op
	quit chan struct{}
	done chan struct{}

	retention time.Duration
	pruneWG   sync.WaitGroup

	mu     sync.RWMutex // guards closed against sends on ops
	closed bool

	statsMu sync.Mutex
	stats   store.CommitStats

	healthMu   sync.Mutex
	failing    bool
	lastErr    string
	since      time.Time
	probeEvery time.Duration
	probeStop  chan struct{}
	probeWG    sync.WaitGroup
	probing    bool
}

var _ store.Backend = (*Store)(nil)

// Open connects to the database dsn names, applies the migrations it has
// not seen, and starts the committer.
func Open(ctx context.Context, dsn string, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn's parse errors can quote the DSN, password included.
		return nil, errors.New("the store's dsn is not a valid PostgreSQL connection string (see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING)")
	}
	if cfg.MaxConns < 4 {
		cfg.MaxConns = 4
	}
	timeout := opts.ConnectTimeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	if err := pool.Ping(cctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL at %s: %w", Describe(cfg.ConnConfig), err)
	}
	if err := migrate(cctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{
		pool:       pool,
		log:        opts.Logger,
		now:        opts.Now,
		maxBatch:   opts.MaxBatch,
		ops:        make(chan *op, 1024),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
		probeEvery: opts.ProbeInterval,
		probeStop:  make(chan struct{}),
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
	if s.probeEvery <= 0 {
		s.probeEvery = store.DefaultProbeInterval
	}
	s.since = s.now()
	s.retention = opts.TakenRetention
	if s.retention <= 0 {
		s.retention = store.DefaultTakenRetention
	}
	go s.commitLoop()
	s.pruneWG.Add(1)
	go s.pruneLoop()
	return s, nil
}

// Describe names the server a connection goes to, never its password.
func Describe(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d/%s as %s", c.Host, c.Port, c.Database, c.User)
}

// Pool is the store's connection pool (for the cluster's leases, which
// keep their own connections but share the schema).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close waits for queued writes to commit, then closes the connections.
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
	s.pruneWG.Wait()
	s.healthMu.Lock()
	close(s.probeStop)
	s.healthMu.Unlock()
	s.probeWG.Wait()
	s.pool.Close()
	return nil
}

// Stats returns the group commit counters.
func (s *Store) Stats() store.CommitStats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// Health returns the store's write health. FreeBytes is 0: the server's
// disk is the database administrator's to watch.
func (s *Store) Health() store.Health {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	h := store.Health{State: store.StateOK, LastError: s.lastErr, Since: s.since}
	if s.failing {
		h.State = store.StateFailing
	}
	return h
}

// noteCommit records the outcome of a transaction; a failed one (not a
// write that refused itself) makes the store failing until a write commits.
func (s *Store) noteCommit(err error) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	switch {
	case err == nil || errors.Is(err, errBatch) || isRefusal(err):
		if s.failing {
			s.failing = false
			s.since = s.now()
			s.log.Info("session store writes again")
		}
	case !s.failing:
		s.failing = true
		s.lastErr = err.Error()
		s.since = s.now()
		s.log.Error("session store cannot write; probing until it can", "error", err)
		if !s.probing {
			s.probing = true
			s.probeWG.Add(1)
			go s.probe()
		}
	default:
		s.lastErr = err.Error()
	}
}

// probe tries a write every probe interval while the store is failing.
func (s *Store) probe() {
	defer s.probeWG.Done()
	t := time.NewTicker(s.probeEvery)
	defer t.Stop()
	for {
		select {
		case <-s.probeStop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.probeEvery)
		_, err := s.pool.Exec(ctx, `INSERT INTO gateway_probe (id, at) VALUES (1, now())
			ON CONFLICT (id) DO UPDATE SET at = excluded.at`)
		cancel()
		s.noteCommit(err)
		if err == nil {
			s.healthMu.Lock()
			s.probing = false
			s.healthMu.Unlock()
			return
		}
	}
}

// refusal is a write that refused itself (a future epoch, an unknown
// code): the store is fine.
type refusal struct{ err error }

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func isRefusal(err error) bool {
	var r *refusal
	return errors.As(err, &r)
}

// retryable reports a transaction that lost a race with another host's
// (deadlock, serialisation failure, unique violation on a concurrent first
// insert) and may simply run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", "40P01", "23505":
		return true
	}
	return false
}
