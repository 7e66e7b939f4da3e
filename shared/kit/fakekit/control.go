package fakekit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// controlPrefix is where a fake's control API lives on its own server.
// Requests under it are not logged, counted or faulted.
const controlPrefix = "/_fake/"

// Control adds a control call: POST {URL}/_fake/{name} with a JSON body
// runs fn, which answers with a JSON value (or an error, answered 400).
// A test in the same process calls the fake's Go methods; the control API
// is how a fake running as its own process is driven and read. Built in:
// GET /_fake/stats (the counters) and GET /_fake/requests (the log).
func (s *Server) Control(name string, fn func(in json.RawMessage) (any, error)) {
	s.mux.HandleFunc("POST "+controlPrefix+name, func(w http.ResponseWriter, r *http.Request) {
		var in json.RawMessage
		if err := ReadJSON(r, &in); err != nil && !errors.Is(err, io.EOF) {
			WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		out, err := fn(in)
		if err != nil {
			WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		WriteJSON(w, http.StatusOK, out)
	})
}

// Call calls a fake's control API at baseURL: POST /_fake/{name} with in
// as JSON (GET when in is nil and name is "stats" or "requests"), decoding
// the answer into out when out is not nil.
func Call(ctx context.Context, baseURL, name string, in, out any) error {
	method, body := http.MethodPost, []byte("{}")
	if in == nil && (name == "stats" || name == "requests" || strings.HasPrefix(name, "log/")) {
		method, body = http.MethodGet, nil
	} else if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encoding control call %s: %w", name, err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(baseURL, "/")+controlPrefix+name, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("control call %s: %w", name, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("control call %s: %w", name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("control call %s: %s: %s", name, resp.Status, bytes.TrimSpace(data))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("control call %s: decoding the answer: %w", name, err)
	}
	return nil
}

// WriteAddrFile writes the server's URL to path, atomically (a reader
// never sees half of it), for whoever waits in ReadAddrFile.
func (s *Server) WriteAddrFile(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".addr-*")
	if err != nil {
		return fmt.Errorf("writing the address file: %w", err)
	}
	if _, err := tmp.WriteString(s.URL + "\n"); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("writing the address file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("writing the address file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("writing the address file: %w", err)
	}
	return nil
}

// ReadAddrFile waits until path exists (a fake started as a process writes
// it once it listens) and returns the URL in it, or ctx's error.
func ReadAddrFile(ctx context.Context, path string) (string, error) {
	for {
		data, err := os.ReadFile(path)
		if err == nil {
			if addr := strings.TrimSpace(string(data)); addr != "" {
				return addr, nil
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("reading the address file: %w", err)
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("waiting for the address file %s: %w", path, ctx.Err())
		case <-t.C:
		}
	}
}
