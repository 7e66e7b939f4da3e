package fakekit

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"
)

// Stats are named counters ("identifies", "dials"). The zero value is
// ready to use; it is safe for concurrent use.
type Stats struct {
	mu sync.Mutex
	m  map[string]int
}

// Add adds n to the counter name.
func (s *Stats) Add(name string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]int{}
	}
	s.m[name] += n
}

// Inc adds one to the counter name.
func (s *Stats) Inc(name string) { s.Add(name, 1) }

// Get returns the counter name (0 if never counted).
func (s *Stats) Get(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[name]
}

// Snapshot returns a copy of every counter.
func (s *Stats) Snapshot() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	maps.Copy(out, s.m)
	return out
}

// Log records what the bot did (messages posted, edits, acks), in order.
// It is safe for concurrent use.
type Log[T any] struct {
	mu    sync.Mutex
	items []T
}

// NewLog returns a log served by s's control API at GET /_fake/log/{name}.
func NewLog[T any](s *Server, name string) *Log[T] {
	l := &Log[T]{}
	s.HandleFunc("GET "+controlPrefix+"log/"+name, func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, l.All())
	})
	return l
}

// Add appends v.
func (l *Log[T]) Add(v T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items = append(l.items, v)
}

// All returns a copy of the log, oldest first.
func (l *Log[T]) All() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]T(nil), l.items...)
}

// Len returns the number of entries.
func (l *Log[T]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.items)
}

// Wait waits up to timeout for an entry that match accepts and returns the
// first one; the test fails naming what when none comes.
func (l *Log[T]) Wait(t testing.TB, timeout time.Duration, what string, match func(T) bool) T {
	t.Helper()
	var found T
	Eventually(t, timeout, what, func() bool {
		for _, v := range l.All() {
			if match(v) {
				found = v
				return true
			}
		}
		return false
	})
	return found
}

// Eventually polls cond until it holds, failing the test naming what when
// timeout passes first.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("waited %v for %s", timeout, what)
	}
}

// Poll polls cond every few milliseconds until it holds (nil) or timeout
// passes (an error), for code that has no test to fail.
func Poll(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("condition still false after %v", timeout)
		}
		time.Sleep(wait)
	}
	return nil
}

// SyncBuffer is a bytes.Buffer safe for concurrent use: a process's output
// written by one goroutine while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FreeAddr returns a loopback address whose port is free right now, for a
// process the test starts to listen on. The port is below the kernel's
// ephemeral range, so no server that listens on port 0 meanwhile (a fake,
// an httptest server, another test's) can take it first, and it is never
// handed out twice in one process.
func FreeAddr() (string, error) {
	low := ephemeralLow()
	for range 200 {
		port := freeLow + rand.N(low-freeLow)
		freeMu.Lock()
		taken := freeGiven[port]
		freeMu.Unlock()
		if taken {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // in use
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		freeMu.Lock()
		fresh := !freeGiven[port]
		freeGiven[port] = true
		freeMu.Unlock()
		if fresh {
			return addr, nil
		}
	}
	return "", errors.New("finding a free port: none of 200 tried was free")
}

// freeLow is the lowest port FreeAddr hands out.
const freeLow = 10000

var (
	freeMu    sync.Mutex
	freeGiven = map[int]bool{}
)

// ephemeralLow is the lowest port the kernel picks for port 0 (Linux's
// ip_local_port_range), or 32768.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		var lo, hi int
		if _, err := fmt.Sscan(string(b), &lo, &hi); err == nil && lo > freeLow+1000 {
			return lo
		}
	}
	return 32768
}
