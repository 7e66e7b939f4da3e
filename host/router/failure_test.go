package router

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/shared/kit/fakekit"
)

type detailedErr struct{}

func (detailedErr) Error() string { return "provider \"p\" rejected the API key" }
func (detailedErr) LogDetails() (hclog.Level, []any) {
	return hclog.Error, []any{"status", 401, "provider_message", "Incorrect API key", "attempts", 1}
}

func TestAgentFailedIsLoggedWithItsDetailsAtItsLevel(t *testing.T) {
	var buf fakekit.SyncBuffer
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
