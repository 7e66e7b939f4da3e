package agent

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/plughost/gateway/host/provider/providertest"
)

func TestCapReply(t *testing.T) {
	short := "fits"
	if out, cut := capReply(short, 2048); cut || out != short {
		t.Fatalf("capReply(short) = %q, %v", out, cut)
	}
	for _, tc := range []struct {
		name, text string
	}{
		{"lines", strings.Repeat("a line of text\n", 1000)},
		{"one long word of multibyte runes", strings.Repeat("é€😀", 2000)},
		{"open code block", "intro\n```go\n" + strings.Repeat("x := 1\n", 2000)},
	} {
		const limit = 4096
		out, cut := capReply(tc.text, limit)
		if !cut || len(out) > limit {
			t.Errorf("%s: cut=%v, %d bytes; want cut to at most %d", tc.name, cut, len(out), limit)
		}
		if !utf8.ValidString(out) {
			t.Errorf("%s: the cut split a UTF-8 sequence", tc.name)
		}
		if !strings.HasSuffix(out, "(max_reply_bytes).]") || !strings.Contains(out, "it was "+strconv.Itoa(len(tc.text))+" bytes") {
			t.Errorf("%s: no note: ...%q", tc.name, out[len(out)-120:])
		}
		if strings.Count(out, "```")%2 != 0 {
			t.Errorf("%s: a code block is left open", tc.name)
		}
		if len(out) < limit-1200 {
			t.Errorf("%s: cut far below the limit: %d bytes", tc.name, len(out))
		}
	}
}

// The reply is cut where it is produced: what is recorded, what is
// returned for delivery and what the next turn sends as history agree.
func TestReplyIsCutAtMaxReplyBytesBeforeItIsRecorded(t *testing.T) {
	srv := providertest.New(t)
	srv.Reply = func(r *providertest.Request) string {
		if r.LastUser() == "big" {
			return strings.Repeat("word ", 10_000)
		}
		return "small"
	}
	cfg := openaiConfig(srv, 8, 8)
	cfg.MaxReplyBytes = 2048
	s := newTestService(t, cfg, Options{})
	for _, stream := range []bool{false, true} {
		var reply string
		var err error
		if stream {
			reply, err = s.ReplyStream(context.Background(), "alice", "big", nil)
		} else {
			reply, err = s.Reply(context.Background(), "alice", "big")
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(reply) > 2048 || !strings.Contains(reply, "[Reply cut: it was") {
			t.Fatalf("stream=%v: reply of %d bytes: ...%q", stream, len(reply), reply[max(0, len(reply)-100):])
		}
		if _, err := s.Reply(context.Background(), "alice", "next"); err != nil {
			t.Fatal(err)
		}
		msgs := srv.LastRequest().Messages
		if got := msgs[len(msgs)-2]; got.Role != "assistant" || got.Content != reply {
			t.Fatalf("stream=%v: history holds %d bytes, not the cut reply", stream, len(got.Content))
		}
	}
}
