package adapter

import (
	"strings"
	"testing"

	"github.com/bwmarrin/discordgo"
	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// FuzzGatewayFrame feeds arbitrary frames through what the read loop does
// with one: decode the payload, and for a dispatch, decode the event and
// turn a message into a host message. Nothing may panic, and whatever is
// handed to the host must be something the host accepts.
func FuzzGatewayFrame(f *testing.F) {
	f.Add([]byte(`{"op":0,"s":1,"t":"MESSAGE_CREATE","d":{"id":"1","channel_id":"C1","content":"hi","author":{"id":"2","username":"alice"}}}`))
	f.Add([]byte(`{"op":0,"s":2,"t":"MESSAGE_CREATE","d":{"id":"1","channel_id":"C1","guild_id":"G1","content":"<@999> hi","author":{"id":"2"},"mentions":[{"id":"999"}]}}`))
	f.Add([]byte(`{"op":0,"t":"THREAD_CREATE","d":{"id":"T1","parent_id":"C1","type":11}}`))
	f.Add([]byte(`{"op":0,"t":"GUILD_CREATE","d":{"id":"G1","threads":[{"id":"T2","parent_id":"C1"}]}}`))
	f.Add([]byte(`{"op":0,"t":"THREAD_LIST_SYNC","d":{"threads":[{"id":"T3"}]}}`))
	f.Add([]byte(`{"op":0,"t":"READY","d":{"session_id":"s","resume_gateway_url":"wss://x","user":{"id":"999"}}}`))
	f.Add([]byte(`{"op":10,"d":{"heartbeat_interval":41250}}`))
	f.Add([]byte(`{"op":9,"d":false}`))
	f.Add([]byte(`{"op":0,"t":"MESSAGE_CREATE","d":null}`))
	f.Add([]byte(`{"op":"0"}`))
	f.Add([]byte(`[]`))
	a := &Adapter{log: hclog.NewNullLogger(), cfg: settings{access: kit.Access{RequireMention: true}}}
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
		a.dispatch(p.Type, p.Data, "", func(ev shared.Event) bool {
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
