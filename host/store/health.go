package store

import (
	"bytes"
	"errors"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Store states, as /v1/status shows them.
const (
	// StateOK: the last write committed.
	StateOK = "ok"
	// StateFailing: the last write failed (a full disk, an I/O error); the
	// store probes until a write commits again.
	StateFailing = "failing"
)

// Health is the store's ability to write, for /v1/status and /readyz.
type Health struct {
	State string `json:"state"`
	// LastError is the last write failure, kept after recovery.
	LastError string    `json:"last_error,omitempty"`
	Since     time.Time `json:"since"`
	// FreeBytes is the space left for the store's file system (statfs).
	FreeBytes uint64 `json:"free_bytes"`
}

// DefaultProbeInterval is how often a failing store tries a write.
const DefaultProbeInterval = 2 * time.Second

// probeSize is the probe write: big enough that it does not fit in the
// space a full disk still has for a few bytes of metadata.
const probeSize = 16 << 10

var (
	bucketMeta = []byte("meta")
	probeKey   = []byte("probe")
)

// health tracks write failures. It is guarded by its own mutex: the
// committer writes it, status reads it.
type health struct {
	mu        sync.Mutex
	failing   bool
	lastErr   string
	since     time.Time
	probing   bool
	probeStop chan struct{}
	wg        sync.WaitGroup
}

// Health returns the store's write health and free space.
func (s *Store) Health() Health {
	s.health.mu.Lock()
	h := Health{State: StateOK, LastError: s.health.lastErr, Since: s.health.since}
	if s.health.failing {
		h.State = StateFailing
	}
	s.health.mu.Unlock()
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.path, &st); err == nil {
		h.FreeBytes = st.Bavail * uint64(st.Bsize) //nolint:gosec // Bsize is positive
	}
	return h
}

// noteCommit records the outcome of a transaction. A failed one (not a
// write that refused itself) makes the store failing and starts the probe.
func (s *Store) noteCommit(err error) {
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err == nil || errors.Is(err, errBatch):
		if h.failing {
			h.failing = false
			h.since = s.now()
			s.log.Info("session store writes again")
		}
	case !h.failing:
		h.failing = true
		h.lastErr = err.Error()
		h.since = s.now()
		s.log.Error("session store cannot write; probing until it can", "error", err)
		if !h.probing && h.probeStop != nil {
			h.probing = true
			h.wg.Add(1)
			go s.probe()
		}
	default:
		h.lastErr = err.Error()
	}
}

// probe tries a write every probe interval while the store is failing, so
// it recovers by itself once space returns, even with no traffic.
func (s *Store) probe() {
	h := &s.health
	defer h.wg.Done()
	t := time.NewTicker(s.probeEvery)
	defer t.Stop()
	for {
		select {
		case <-h.probeStop:
			return
		case <-t.C:
		}
		err := s.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucketMeta)
			if err != nil {
				return err
			}
			return b.Put(probeKey, bytes.Repeat([]byte{0}, probeSize))
		})
		s.noteCommit(err)
		if err == nil {
			h.mu.Lock()
			h.probing = false
			h.mu.Unlock()
			return
		}
	}
}

// stopProbe ends the probe, for Close.
func (s *Store) stopProbe() {
	s.health.mu.Lock()
	if s.health.probeStop != nil {
		close(s.health.probeStop)
		s.health.probeStop = nil
	}
	s.health.mu.Unlock()
	s.health.wg.Wait()
}
