package fakekit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func TestServerLogsFaultsAndControl(t *testing.T) {
	s := NewServer(t)
	s.HandleFunc("GET /api/ping", func(w http.ResponseWriter, _ *http.Request) {
		s.Stats.Inc("pings")
		WriteJSON(w, http.StatusOK, map[string]string{"ok": "yes"})
	})
	posted := NewLog[string](s, "posted")
	s.Control("post", func(in json.RawMessage) (any, error) {
		var text string
		if err := json.Unmarshal(in, &text); err != nil {
			return nil, err
		}
		posted.Add(text)
		return posted.Len(), nil
	})

	if code := get(t, s.URL+"/api/ping"); code != http.StatusOK {
		t.Fatalf("ping = %d", code)
	}
	s.SetFault("/ping", http.StatusServiceUnavailable)
	if code := get(t, s.URL+"/api/ping"); code != http.StatusServiceUnavailable {
		t.Fatalf("ping with a fault = %d, want 503", code)
	}
	s.SetFault("/ping", 0)
	if code := get(t, s.URL+"/api/ping"); code != http.StatusOK {
		t.Fatalf("ping after the fault = %d", code)
	}

	ctx := context.Background()
	var n int
	if err := Call(ctx, s.URL, "post", "hello", &n); err != nil || n != 1 {
		t.Fatalf("control post = %d, %v", n, err)
	}
	if err := Call(ctx, s.URL, "post", 42, nil); err == nil {
		t.Fatal("a control call with a bad body succeeded")
	}
	var stats map[string]int
	if err := Call(ctx, s.URL, "stats", nil, &stats); err != nil || stats["pings"] != 2 {
		t.Fatalf("stats = %v, %v; want 2 pings (the faulted one never reached the handler)", stats, err)
	}
	var logged []string
	if err := Call(ctx, s.URL, "log/posted", nil, &logged); err != nil || len(logged) != 1 || logged[0] != "hello" {
		t.Fatalf("log/posted = %v, %v", logged, err)
	}
	if got := posted.Wait(t, time.Second, "hello to be posted", func(s string) bool { return s == "hello" }); got != "hello" {
		t.Fatalf("Wait = %q", got)
	}
	var reqs []string
	if err := Call(ctx, s.URL, "requests", nil, &reqs); err != nil || len(reqs) != 3 || reqs[0] != "GET /api/ping" {
		t.Fatalf("requests = %q, %v; want the three pings and no control calls", reqs, err)
	}
}

func TestCloseWaitsForHeldConnections(t *testing.T) {
	s := Start()
	var finished atomic.Bool
	s.HandleFunc("GET /ws", func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		release, ok := s.Hold(conn)
		defer release()
		if !ok {
			_ = conn.Close()
			return
		}
		_, _ = conn.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n"))
		buf := make([]byte, 1)
		_, _ = conn.Read(buf) // blocks until Close closes it
		finished.Store(true)
	})
	c, err := net.Dial("tcp", s.URL[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_, _ = c.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"))
	buf := make([]byte, 12)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if !finished.Load() {
		t.Fatal("Close returned before the held connection's handler ended")
	}
	if _, ok := s.Hold(c); ok {
		t.Fatal("Hold succeeded on a closed server")
	}
}

func TestAddrFile(t *testing.T) {
	s := NewServer(t)
	path := filepath.Join(t.TempDir(), "fake.addr")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := ReadAddrFile(ctx, path); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadAddrFile before it is written = %v, want the deadline", err)
	}
	if err := s.WriteAddrFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadAddrFile(context.Background(), path)
	if err != nil || got != s.URL {
		t.Fatalf("ReadAddrFile = %q, %v; want %q", got, err, s.URL)
	}
}

func TestPoll(t *testing.T) {
	n := 0
	if err := Poll(time.Second, func() bool { n++; return n == 3 }); err != nil {
		t.Fatal(err)
	}
	if err := Poll(10*time.Millisecond, func() bool { return false }); err == nil {
		t.Fatal("Poll of a condition that never holds returned nil")
	}
}

func TestFreeAddrAvoidsEphemeralPortsAndRepeats(t *testing.T) {
	seen := map[string]bool{}
	low := ephemeralLow()
	for range 50 {
		addr, err := FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		if seen[addr] {
			t.Fatalf("FreeAddr handed out %s twice", addr)
		}
		seen[addr] = true
		_, portStr, _ := net.SplitHostPort(addr)
		var port int
		if _, err := fmt.Sscan(portStr, &port); err != nil || port < freeLow || port >= low {
			t.Fatalf("FreeAddr = %s, want a port in [%d, %d): below the ephemeral range", addr, freeLow, low)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("the address FreeAddr returned is not free: %v", err)
		}
		_ = ln.Close()
	}
}
