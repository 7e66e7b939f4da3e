package adapter

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// FuzzInbound feeds Socket Mode messages through what the read loop does
// with them (decode, parse the event, the access policy) and checks that a
// message the host would get is well formed and never the bot's own.
// Seeds: testdata/fuzz/FuzzInbound.
func FuzzInbound(f *testing.F) {
	f.Add([]byte(`{"type":"events_api","envelope_id":"e1","payload":{"type":"event_callback","event":{"type":"message","channel":"D1","channel_type":"im","user":"U1","text":"hi","ts":"1.2"}}}`))
	f.Add([]byte(`{"type":"events_api","envelope_id":"e2","payload":{"type":"event_callback","event":{"type":"app_mention","channel":"C1","user":"U1","text":"<@U0BOT> hi","ts":"1.3"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req socketmode.Request
		if json.Unmarshal(data, &req) != nil || req.Type != socketmode.RequestTypeEventsAPI {
			return
		}
		ev, err := slackevents.ParseEvent(req.Payload, slackevents.OptionNoVerifyToken())
		if err != nil {
			return
		}
		s := settings{replyInThread: true, access: kit.Access{RequireMention: true, AllowBots: true}}
		var threads recentSet
		threads.add(threadKey("C1", "1.1"))
		var m *shared.Message
		var denied Denial
		switch data := ev.InnerEvent.Data.(type) {
		case *slackevents.MessageEvent:
			m, denied = fromMessage(s, testBotUser, testBotID, &threads, data)
		case *slackevents.AppMentionEvent:
			m, denied = fromMention(s, testBotUser, testBotID, data)
		default:
			return
		}
		if (m == nil) == (denied == "") {
			t.Fatalf("message %+v with denial %q: want exactly one", m, denied)
		}
		if m == nil {
			return
		}
		if m.UserID == testBotUser || m.UserID == testBotID {
			t.Fatalf("the bot would answer itself: %+v", m)
		}
		if m.Text == "" || m.Text != strings.TrimSpace(m.Text) || strings.Contains(m.Text, "<@"+testBotUser+">") {
			t.Fatalf("bad text %q", m.Text)
		}
		if err := m.CheckIDs(); err != nil {
			t.Fatalf("the host would refuse %+v: %v", m, err)
		}
		if m.ConversationID == "" || !strings.HasPrefix(m.ID, m.ConversationID+"/") || len(m.ID) == len(m.ConversationID)+1 {
			t.Fatalf("bad id %q for conversation %q", m.ID, m.ConversationID)
		}
	})
}
