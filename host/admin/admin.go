// Package admin serves the host's admin endpoint: /healthz, /readyz,
// /v1/status and /metrics, on a loopback TCP address or a unix socket.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
	Logger   hclog.Logger
}

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
// mode 0600 (a stale socket file left by a crashed host is replaced: the
// caller holds the PID lock, so no live host owns it).
func Listen(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	var ln net.Listener
	var err error
	s := &Server{done: make(chan error, 1)}
	if IsUnix(opts.Addr) {
		path := opts.Addr
		_ = os.Remove(path)
		ln, err = net.Listen("unix", path)
		if err == nil {
			err = os.Chmod(path, 0o600)
		}
		s.unix = path
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
	s.ln = ln
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { s.done <- s.srv.Serve(ln) }()
	opts.Logger.Info("admin endpoint listening", "addr", ln.Addr().String())
	return s, nil
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
