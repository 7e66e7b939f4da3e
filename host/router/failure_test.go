package router

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

type detailedErr struct{}

func (detailedErr) Error() string { return "provider \"p\" rejected the API key" }
func (detailedErr) LogDetails() (hclog.Level, []any) {
	return hclog.Error, []any{"status", 401, "provider_message", "Incorrect API key", "attempts", 1}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestAgentFailedIsLoggedWithItsDetailsAtItsLevel(t *testing.T) {
	var buf lockedBuffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
	agents := &fakeAgents{ReplyFunc: func(context.Context, string, string) (string, error) {
		return "", errors.Join(detailedErr{})
	}}
	r, rec := newTestRouter(t, agents, Options{Logger: logger})
	r.Handle("web", msg("m1", "a", "hi"))
	rec.waitReply(t, "m1")
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(buf.String(), "agent failed") {
		if time.Now().After(deadline) {
			t.Fatal("agent failed was not logged")
		}
		time.Sleep(time.Millisecond)
	}
	line := buf.String()
	for _, want := range []string{"[ERROR]", "status=401", `provider_message="Incorrect API key"`, "attempts=1", "session="} {
		if !strings.Contains(line, want) {
			t.Errorf("log lacks %s: %s", want, line)
		}
	}
}
