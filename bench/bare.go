package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/plughost/gateway/shared/kit/fakekit"
)

// bareEnv, when set to an address, makes the bench binary the baseline: a
// bare net/http server answering POST /v1/messages as the HTTP platform
// does, without plugin, host or agent. It runs as its own process so that
// its process shape matches the gateway's.
const bareEnv = "GATEWAY_BENCH_BARE_ADDR"

type bareRequest struct {
	Session string `json:"session"`
	Text    string `json:"text"`
}

type bareResponse struct {
	Session string `json:"session"`
	Reply   string `json:"reply,omitempty"`
	Error   string `json:"error,omitempty"`
}

// serveBare is the baseline server's main.
func serveBare(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		var req bareRequest
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 65536)).Decode(&req); err != nil || req.Text == "" {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(bareResponse{Error: "bad request"})
			return
		}
		_ = json.NewEncoder(w).Encode(bareResponse{Session: req.Session, Reply: "echo: " + req.Text})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}

// bare is a running baseline server.
type bare struct {
	*proc
	addr string
}

func (b *bare) url() string { return "http://" + b.addr + "/v1/messages" }

// startBare re-executes the bench as the baseline server and waits until
// it answers.
func startBare() (*bare, error) {
	addr, err := fakekit.FreeAddr()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), bareEnv+"="+addr)
	p, err := startProc(cmd, filepath.Join(env.tmp, fmt.Sprintf("bare-%d.log", time.Now().UnixNano())))
	if err != nil {
		return nil, err
	}
	b := &bare{proc: p, addr: addr}
	if err := waitAnswering(b.url(), p, 10*time.Second); err != nil {
		p.kill()
		return nil, err
	}
	return b, nil
}

// waitAnswering posts a message to url until it is answered with 200.
func waitAnswering(url string, p *proc, timeout time.Duration) error {
	c := newLoadClient(1, 2*time.Second)
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p != nil && !p.alive() {
			return errors.New("process exited before answering")
		}
		if ok, _ := postMessage(c, url, "probe", "ping"); ok {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer within %s", url, timeout)
}
