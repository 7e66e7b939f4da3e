package agent

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/provider/providertest"
	"github.com/plughost/gateway/host/store"
)

const (
	killHelperEnv    = "GATEWAY_AGENT_KILL_HELPER"
	killHelperURLEnv = "GATEWAY_AGENT_KILL_URL"
)

func killConfig(url string) Config {
	return Config{
		Providers: []provider.Config{{Name: "fake", Type: "openai", BaseURL: url, APIKey: testKey}},
		Model:     "fake/m1", HistoryLimit: 40,
		MaxAgents: 8, IdleTTL: time.Hour,
	}
}

// hostKillHelper plays the host: three turns, each acknowledged on stdout
// once Reply returned (i.e. once the reply could have been delivered), then
// it waits to be SIGKILLed.
func hostKillHelper(dir, url string) {
	st, err := store.Open(filepath.Join(dir, store.FileName), nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	s, err := New(killConfig(url), st, Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	for i := range 3 {
		if _, err := s.Reply(context.Background(), "alice", fmt.Sprint("turn ", i)); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("ack", i)
	}
	select {}
}

// SIGKILL of the host between turns: after restart the transcript is intact
// and the next reply includes the history.
func TestHostSIGKILLBetweenTurnsKeepsHistory(t *testing.T) {
	srv := providertest.New(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killHelperEnv+"="+dir, killHelperURLEnv+"="+srv.URL)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for i := range 3 {
		if !sc.Scan() || sc.Text() != fmt.Sprint("ack ", i) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("helper said %q", sc.Text())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// The dead host's keep-alive connection is gone with it.
	srv.WaitOpenConns(0, 5*time.Second)

	s := newTestServiceAt(t, dir, killConfig(srv.URL), Options{})
	info, err := s.Session("alice")
	if err != nil || info.Messages != 6 {
		t.Fatalf("after SIGKILL session = %+v, %v; want 6 messages", info, err)
	}
	if _, err := s.Reply(context.Background(), "alice", "after restart"); err != nil {
		t.Fatal(err)
	}
	r := srv.LastRequest()
	if len(r.Messages) != 7 {
		t.Fatalf("sent %d messages; want 6 of history + 1", len(r.Messages))
	}
	for i := range 3 {
		if r.Messages[2*i].Content != fmt.Sprint("turn ", i) || r.Messages[2*i+1].Content != fmt.Sprint("reply to: turn ", i) {
			t.Fatalf("history %d = %+v", i, r.Messages[2*i:2*i+2])
		}
	}
}
