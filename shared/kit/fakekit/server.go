// Package fakekit is what every fake platform server in the tests shares, so
// that a fake (plugins/NAME/fakeNAME) is only its platform's protocol: a
// loopback HTTP server that logs requests, counts events, injects faults,
// holds websocket connections until it closes, a control API over HTTP
// with an address file (to drive a fake running as its own process), logs
// of what the bot did, and waiting with deadlines. The small helpers every
// test needs live here too, once: Eventually and Poll, FreeAddr, SyncBuffer.
package fakekit

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Server is a fake platform's HTTP server on 127.0.0.1. Handlers may be
// added while it serves. Its methods are safe for concurrent use.
type Server struct {
	// URL is the server's base URL, http://127.0.0.1:PORT.
	URL string
	// Stats counts what happened; fakes add their own counters.
	Stats Stats
	// FaultBody is the JSON body of an injected fault (SetFault); the
	// default is {"error": "<status text>"}. Set it before the first fault.
	FaultBody func(status int) any

	mux  *http.ServeMux
	http *httptest.Server

	mu       sync.Mutex
	requests []string
	faults   map[string]int // path suffix → status
	held     map[io.Closer]struct{}
	holding  sync.WaitGroup
	closed   bool
}

// NewServer starts a server and closes it when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := Start()
	t.Cleanup(s.Close)
	return s
}

// Start starts a server; the caller closes it. Use it where there is no
// test, as in a fake run as its own process.
func Start() *Server {
	s := &Server{mux: http.NewServeMux(), faults: map[string]int{}, held: map[io.Closer]struct{}{}}
	s.http = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.http.URL
	s.mux.HandleFunc("GET /_fake/stats", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, s.Stats.Snapshot())
	})
	s.mux.HandleFunc("GET /_fake/requests", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, s.Requests())
	})
	return s
}

// Handle registers h for pattern (http.ServeMux syntax, "POST /x/{id}").
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// HandleFunc registers fn for pattern.
func (s *Server) HandleFunc(pattern string, fn http.HandlerFunc) { s.mux.HandleFunc(pattern, fn) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	control := strings.HasPrefix(r.URL.Path, controlPrefix)
	status := 0
	if !control {
		s.requests = append(s.requests, r.Method+" "+r.URL.Path)
		for suffix, st := range s.faults {
			if strings.HasSuffix(r.URL.Path, suffix) {
				status = st
			}
		}
	}
	body := s.FaultBody
	s.mu.Unlock()
	if status != 0 {
		var v any = map[string]any{"error": http.StatusText(status)}
		if body != nil {
			v = body(status)
		}
		WriteJSON(w, status, v)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// SetFault makes every request whose path ends with suffix fail with
// status (a 500, a 429) before its handler runs. Zero restores it.
func (s *Server) SetFault(suffix string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		delete(s.faults, suffix)
		return
	}
	s.faults[suffix] = status
}

// Requests returns every request the server received as "METHOD PATH",
// oldest first, websocket upgrades included and control calls excluded.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// Hold keeps a connection that a handler goes on serving after the HTTP
// exchange (a websocket): Close closes it and waits until the handler calls
// release. ok is false once the server is closing; the handler then closes
// c itself and returns.
func (s *Server) Hold(c io.Closer) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return func() {}, false
	}
	s.held[c] = struct{}{}
	s.holding.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.held, c)
			s.mu.Unlock()
			s.holding.Done()
		})
	}, true
}

// Closed reports whether Close was called.
func (s *Server) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close closes every held connection, waits for their handlers, and stops
// the server. It is safe to call more than once.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for c := range s.held {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.holding.Wait()
	s.http.CloseClientConnections()
	s.http.Close()
}

// WriteJSON writes v as a JSON response with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ReadJSON decodes a request body into v; a failure is an error that a
// handler can answer 400 with.
func ReadJSON(r *http.Request, v any) error {
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<20)).Decode(v); err != nil {
		return fmt.Errorf("decoding the request body: %w", err)
	}
	return nil
}
