package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit/fakekit"
)

// A plugin that does not bound its ids (any plugin: the host cannot trust
// them) gets its message refused with a short, logged reason; the message
// never reaches a session, and the next good one does.
func TestHostRefusesUnboundedIDs(t *testing.T) {
	dir := t.TempDir()
	cfg := load(t, dir, "")
	logs := &fakekit.SyncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Debug, Output: logs})
	h, err := Start(Options{Config: cfg, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := h.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}()

	huge := strings.Repeat("c", 40000)
	h.handleMessage("web", &shared.Message{ID: "m1", ConversationID: huge, UserID: "u", Direct: true, Text: "hi"})
	h.handleMessage("web", &shared.Message{ID: "m2", ConversationID: "ok", UserID: "u\x00", Direct: true, Text: "hi"})
	// (A group message: a stranger's DM would get a pairing code instead.)
	h.handleMessage("web", &shared.Message{ID: "m3", ConversationID: "good", UserID: "u", Text: "hi"})
	// m3 goes to a session; its reply cannot be delivered (there is no
	// platform "web"), which the router logs.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "could not deliver a reply") {
		if time.Now().After(deadline) {
			t.Fatalf("the good message was not routed; log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	out := logs.String()
	for _, want := range []string{
		"refused a message whose ids are unusable: platform=web id=m1 reason=\"ConversationID is 40000 bytes long; ids are at most 256 bytes\"",
		"refused a message whose ids are unusable: platform=web id=m2 reason=\"UserID holds the control character U+0000 at byte 1\"",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Count(out, "could not deliver a reply") != 1 {
		t.Errorf("a refused message reached a session; log:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if len(line) > 1024 {
			t.Errorf("log line of %d bytes: %.200s…", len(line), line)
		}
	}
}
