package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/plughost/gateway/host/provider"
)

func echoConfig() Config {
	return Config{
		Providers: []provider.Config{{Name: "echo", Type: "echo"}},
		Model:     "echo/echo", SystemPrompt: "be brief", HistoryLimit: 40,
		MaxAgents: 8, IdleTTL: time.Hour,
	}
}

func closeService(t testing.TB, s *Service) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.store.Close(); err != nil { // as the host does after Close
		t.Fatalf("closing the store: %v", err)
	}
}

func TestEchoReplyAndCommands(t *testing.T) {
	s, err := New(echoConfig(), openStore(t, t.TempDir(), nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeService(t, s)
	ctx := context.Background()

	got, err := s.Reply(ctx, "alice", "hello")
	if err != nil || got != "echo: hello" {
		t.Fatalf("Reply = %q, %v; want \"echo: hello\"", got, err)
	}
	if _, err := s.Reply(ctx, "alice", "again"); err != nil {
		t.Fatal(err)
	}
	info, err := s.Session("alice")
	if err != nil || info.Messages != 4 || info.Model != "echo/echo" || info.Created.IsZero() {
		t.Fatalf("Session = %+v, %v; want 4 messages on echo/echo", info, err)
	}

	var ue *UserError
	if err := s.SetModel(ctx, "alice", "nope/x"); !errors.As(err, &ue) {
		t.Fatalf("SetModel(unknown provider) = %v; want *UserError", err)
	}
	if err := s.SetModel(ctx, "alice", "echo/other"); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Model("alice"); m != "echo/other" {
		t.Fatalf("Model = %q; want echo/other", m)
	}
	if err := s.Reset(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	info, _ = s.Session("alice")
	if info.Messages != 0 || info.Archived != 1 || info.Model != "echo/other" {
		t.Fatalf("after Reset Session = %+v; want empty transcript, 1 archived, model kept", info)
	}
	if got := s.Models(); len(got) != 1 || got[0] != "echo" {
		t.Fatalf("Models = %v", got)
	}
	st := s.Stats()
	if st.EvictionsByReason[ReasonModelSwitch] != 1 {
		t.Fatalf("Stats = %+v; want one model_switch eviction", st)
	}
}
