package admin

import (
	"context"
	"encoding/json"
	"io"
	"net"
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
	staleSocket(t, path) // left by a crash
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

// staleSocket leaves a socket at path that nobody listens on, as a crashed
// host does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
}

// admin = "PATH" must never delete what is at PATH unless it is a stale
// socket, nor use a folder others can write to.
func TestUnixSocketPathIsNotTrustedBlindly(t *testing.T) {
	t.Run("a regular file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "precious")
		if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Listen(Options{Addr: path})
		if err == nil || !strings.Contains(err.Error(), "is not a socket") {
			t.Fatalf("err = %v, want a refusal naming a non-socket", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "keep me" {
			t.Fatalf("the file at the admin path was changed: %q", b)
		}
	})
	t.Run("a symlink", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(dir, "target")
		if err := os.WriteFile(target, []byte("keep me"), 0o644); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "admin.sock")
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
		if _, err := Listen(Options{Addr: path}); err == nil {
			t.Fatal("a symlink at the admin path was replaced")
		}
		fi, err := os.Stat(target)
		if err != nil || fi.Mode().Perm() != 0o644 {
			t.Fatalf("the link's target changed: %v %v", fi, err)
		}
	})
	t.Run("a live socket", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "admin.sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if _, err := Listen(Options{Addr: path}); err == nil || !strings.Contains(err.Error(), "listening") {
			t.Fatalf("err = %v, want a refusal: another process listens there", err)
		}
	})
	t.Run("a folder others can write to", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chmod(dir, os.ModeSticky|0o777); err != nil {
			t.Fatal(err)
		}
		_, err := Listen(Options{Addr: filepath.Join(dir, "admin.sock")})
		if err == nil || !strings.Contains(err.Error(), "writable by group or others") {
			t.Fatalf("err = %v, want a refusal of the folder", err)
		}
	})
}
