package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func listen(t *testing.T, addr string, ready bool) *Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "test_total", Help: "test"}))
	s, err := Listen(Options{
		Addr:     addr,
		Status:   func() any { return map[string]int{"pid": 7} },
		Ready:    func() (bool, string) { return ready, "web is backoff" },
		Gatherer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fetch(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestUnixSocketIsPrivateAndServes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	if err := os.WriteFile(path, nil, 0o644); err != nil { // a stale socket file left by a crash
		t.Fatal(err)
	}
	s := listen(t, path, false)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode = %v, want a socket with 0600", fi.Mode())
	}
	c, base := Client(path, 2*time.Second)
	defer c.CloseIdleConnections()
	if code, body := fetch(t, c, base+"/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("healthz: %d %s", code, body)
	}
	code, body := fetch(t, c, base+"/readyz")
	if code != 503 || !strings.Contains(body, "web is backoff") {
		t.Fatalf("readyz: %d %s", code, body)
	}
	code, body = fetch(t, c, base+"/v1/status")
	var doc map[string]int
	if code != 200 || json.Unmarshal([]byte(body), &doc) != nil || doc["pid"] != 7 {
		t.Fatalf("status: %d %s", code, body)
	}
	if code, body := fetch(t, c, base+"/metrics"); code != 200 || !strings.Contains(body, "test_total 0") {
		t.Fatalf("metrics: %d %s", code, body)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left behind after Close: %v", err)
	}
}

func TestTCPAndReady(t *testing.T) {
	s := listen(t, "127.0.0.1:0", true)
	defer s.Close(context.Background())
	c, base := Client(s.Addr().String(), 2*time.Second)
	defer c.CloseIdleConnections()
	if code, _ := fetch(t, c, base+"/readyz"); code != 200 {
		t.Fatalf("readyz = %d, want 200", code)
	}
}

func TestListenErrorNamesAddress(t *testing.T) {
	s := listen(t, "127.0.0.1:0", true)
	defer s.Close(context.Background())
	_, err := Listen(Options{Addr: s.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), s.Addr().String()) {
		t.Fatalf("err = %v, want it to name the address", err)
	}
}

func TestIsUnix(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8787": false, "localhost:1": false, "/run/gateway/admin.sock": true,
		"admin.sock": true, "[::1]:8787": false,
	} {
		if got := IsUnix(addr); got != want {
			t.Errorf("IsUnix(%q) = %v", addr, got)
		}
	}
}
