package adapter

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/shared"
)

// FuzzGatewayFrame feeds arbitrary frames through what the read loop does
// with one: decode the payload, and for a dispatch, decode the event and
// turn a message into a host message. Nothing may panic, and whatever is
// handed to the host must be something the host accepts.
func FuzzGatewayFrame(f *testing.F) {
	f.Add([]byte(`{"op":0,"s":1,"t":"MESSAGE_CREATE","d":{"id":"1","channel_id":"C1","content":"hi","author":{"id":"2","username":"alice"}}}`))
	f.Add([]byte(`{"op":0,"s":2,"t":"MESSAGE_CREATE","d":{"id":"1","channel_id":"C1","guild_id":"G1","content":"<@999> hi","author":{"id":"2"},"mentions":[{"id":"999"}]}}`))
	f.Add([]byte(`{"op":0,"s":3,"t":"MESSAGE_CREATE","d":{"id":"1","channel_id":"C\u0001","content":"hi","author":{"id":"2"}}}`))
	f.Add([]byte(`{"op":0,"s":4,"t":"MESSAGE_CREATE","d":{"id":"1","channel_id":"C1","content":"hi","author":{"id":"` + strings.Repeat("9", 300) + `"}}}`))
	f.Add([]byte(`{"op":0,"t":"THREAD_CREATE","d":{"id":"T1","parent_id":"C1","type":11}}`))
	f.Add([]byte(`{"op":0,"t":"GUILD_CREATE","d":{"id":"G1","threads":[{"id":"T2","parent_id":"C1"}]}}`))
	f.Add([]byte(`{"op":0,"t":"THREAD_LIST_SYNC","d":{"threads":[{"id":"T3"}]}}`))
	f.Add([]byte(`{"op":0,"t":"READY","d":{"session_id":"s","resume_gateway_url":"wss://x","user":{"id":"999"}}}`))
	f.Add([]byte(`{"op":10,"d":{"heartbeat_interval":41250}}`))
	f.Add([]byte(`{"op":9,"d":false}`))
	f.Add([]byte(`{"op":0,"t":"MESSAGE_CREATE","d":null}`))
	f.Add([]byte(`{"op":"0"}`))
	f.Add([]byte(`[]`))
	a := &Adapter{log: hclog.NewNullLogger(), cfg: settings{requireMention: true,
		allowedUsers: set{}, allowedChannels: set{}, allowedGuilds: set{}}}
	a.setBot(&discordgo.User{ID: testBot})
	f.Fuzz(func(t *testing.T, frame []byte) {
		p, err := decodePayload(frame)
		if err != nil || p.Op != opDispatch {
			return
		}
		if p.Type == "READY" {
			a.onReady(&resumeState{}, p.Data)
			a.setBot(&discordgo.User{ID: testBot})
			return
		}
		a.dispatch(p.Type, p.Data, func(ev shared.Event) bool {
			m := ev.Message
			if m == nil {
				t.Fatalf("dispatch emitted a non-message event %+v", ev)
			}
			if err := m.CheckIDs(); err != nil {
				t.Fatalf("dispatch emitted a message the host refuses: %v", err)
			}
			if strings.TrimSpace(m.Text) == "" {
				t.Fatalf("dispatch emitted an empty message")
			}
			return true
		})
	})
}

// FuzzSplitMessage checks what every split of a reply must guarantee: no
// chunk over the limit, none blank, no fence left open, valid UTF-8 stays
// valid, and nothing said is lost or reordered. A fence the text itself
// leaves open may stay open in the last chunk.
func FuzzSplitMessage(f *testing.F) {
	f.Add("hello world", 2000)
	f.Add(strings.Repeat("a", 2001), 2000)
	f.Add(strings.Repeat("😀", 1001), 2000)
	f.Add("```go\nline1\nline2\nline3\n```", 22)
	f.Add("```"+strings.Repeat("x", 100)+"\ncode\n"+strings.Repeat("y", 100)+"\n```", 64)
	f.Add("ae\u0301 e\u0301e\u0301e\u0301", 2)
	f.Add("aaaaaa\nbbbbbb\n\ncccc", 16)
	f.Add("``` ```\n```\n``", 40)
	f.Fuzz(func(t *testing.T, text string, limit int) {
		if limit < 40 || limit > 4000 || len(text) > 20000 {
			t.Skip("limits outside what a platform has")
		}
		chunks := splitMessage(text, limit)
		_, textOpen := openFence(strings.TrimSpace(text))
		for i, c := range chunks {
			if n := textLength(c); n > limit {
				t.Fatalf("chunk %d is %d units, over the limit %d", i, n, limit)
			}
			if utf8.ValidString(text) && !utf8.ValidString(c) {
				t.Fatalf("chunk %d is not valid UTF-8 (split inside a character)", i)
			}
			if strings.TrimSpace(c) == "" {
				t.Fatalf("chunk %d is blank", i)
			}
			// Only a text that leaves a fence open itself may end open.
			if _, open := openFence(c); open && (i < len(chunks)-1 || !textOpen) {
				t.Fatalf("chunk %d of %d leaves a code fence open: %q", i, len(chunks), c)
			}
		}
		// Every non-space character of the text appears in the chunks, in
		// order (the chunks add fences and drop the spaces they break at).
		joined := strings.Join(chunks, "")
		for i := 0; i < len(text); {
			r, w := utf8.DecodeRuneInString(text[i:])
			piece := text[i : i+w] // one character, or one invalid byte
			i += w
			if unicode.IsSpace(r) {
				continue
			}
			j := strings.Index(joined, piece)
			if j < 0 {
				t.Fatalf("%q was lost: text %q, chunks %q", piece, text, chunks)
			}
			joined = joined[j+len(piece):]
		}
	})
}
