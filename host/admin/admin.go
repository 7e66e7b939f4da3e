// Package admin serves the host's admin endpoint: /healthz, /readyz,
// /v1/status and /metrics, on a loopback TCP address or a unix socket.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"github.com/plughost/gateway/host/safepath"
	"github.com/plughost/gateway/shared/webguard"
)

// Options configure a Server.
type Options struct {
	// Addr is host:port, or a unix socket path (containing "/" or ending in .sock).
	Addr string
	// Status returns the document served at /v1/status.
	Status func() any
	// Ready reports whether every enabled platform is running, and if not,
	// why not.
	Ready func() (bool, string)
	// Gatherer serves /metrics; nil for none.
	Gatherer prometheus.Gatherer
	// Routes, if set, registers more endpoints (the access policy's
	// /v1/pairing and /v1/usage).
	Routes func(*http.ServeMux)
	Logger hclog.Logger
	// MaxConnections bounds the open connections (DefaultMaxConnections
	// if 0): a flood of idle connections must never take the file
	// descriptors the host needs to start its plugins.
	MaxConnections int
	// AllowedHosts and AllowedOrigins relax the Host and Origin checks
	// that keep web pages from reading the endpoint (see webguard).
	AllowedHosts   []string
	AllowedOrigins []string
}

// DefaultMaxConnections is the connection cap when Options sets none.
const DefaultMaxConnections = 32

// Timeouts of the endpoint's connections: every answer is small and quick.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 30 * time.Second
)

// Server is a running admin endpoint.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
	unix string
}

// IsUnix reports whether addr names a unix socket path rather than
// host:port: it contains a "/" or ends with ".sock". The config file's
// admin attribute follows the same rule.
func IsUnix(addr string) bool {
	return strings.Contains(addr, "/") || strings.HasSuffix(addr, ".sock")
}

// Listen binds the endpoint and starts serving. A unix socket is created
// mode 0600, in a folder only root or the host's user can change; a stale
// socket left by a crashed host is replaced, but nothing else at its path.
func Listen(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	var ln net.Listener
	var err error
	s := &Server{done: make(chan error, 1)}
	if IsUnix(opts.Addr) {
		ln, err = listenUnix(opts.Addr)
		s.unix = opts.Addr
	} else {
		ln, err = net.Listen("tcp", opts.Addr)
	}
	if err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		return nil, fmt.Errorf("admin endpoint on %s: %w", opts.Addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := opts.Ready()
		if !ok {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": why})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, opts.Status())
	})
	if opts.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	}
	if opts.Routes != nil {
		opts.Routes(mux)
	}
	guarded, err := webguard.Wrap(mux, webguard.Options{Listen: opts.Addr, AnyHost: s.unix != "",
		AllowedHosts: opts.AllowedHosts, AllowedOrigins: opts.AllowedOrigins})
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("admin endpoint: %w", err)
	}
	limit := opts.MaxConnections
	if limit <= 0 {
		limit = DefaultMaxConnections
	}
	s.ln = ln
	s.srv = &http.Server{Handler: guarded, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
		WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: 16 << 10}
	go func() { s.done <- s.srv.Serve(netutil.LimitListener(ln, limit)) }()
	opts.Logger.Info("admin endpoint listening", "addr", ln.Addr().String(), "open_to", openTo(opts.Addr), "max_connections", limit)
	return s, nil
}

// openTo says who may talk to the endpoint at addr, for the log.
func openTo(addr string) string {
	switch {
	case IsUnix(addr):
		return "the gateway's user (unix socket, mode 0600)"
	case webguard.Loopback(addr):
		return "anyone on this machine (loopback, no authentication)"
	default:
		return "anyone who can reach " + addr + " (allow_unauthenticated, no authentication)"
	}
}

// listenUnix listens on a unix socket at path, created mode 0600 from the
// start (by the umask: a chmod afterwards leaves a window, and follows
// links). The umask is the process's: Listen runs at start-up, before
// anything else of the host creates files.
func listenUnix(path string) (net.Listener, error) {
	if err := safepath.CheckDir(filepath.Dir(path), "the admin socket's folder"); err != nil {
		return nil, err
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	return ln, err
}

// removeStaleSocket removes the socket a crashed host left at path. Whatever
// else is there (a file, a link, a socket someone answers on) stays, and is
// an error.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket (%s); refusing to replace it: remove it or choose another admin path", path, fi.Mode().Type())
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("another process is listening on %s; choose another admin path", path)
	}
	return os.Remove(path)
}

// Addr returns the address the endpoint listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the endpoint, letting requests in progress finish until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if s.unix != "" {
		_ = os.Remove(s.unix)
	}
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Client returns an HTTP client and base URL that reach the endpoint at addr.
func Client(addr string, timeout time.Duration) (*http.Client, string) {
	if IsUnix(addr) {
		path := addr
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}
		return &http.Client{Transport: tr, Timeout: timeout}, "http://unix"
	}
	return &http.Client{Timeout: timeout}, "http://" + addr
}
