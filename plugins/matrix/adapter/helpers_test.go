package adapter

import "maunium.net/go/mautrix/event"

// eventContent builds message contents for tests.
type eventContent struct{ Body string }

func (e *eventContent) content() *event.MessageEventContent {
	return &event.MessageEventContent{MsgType: event.MsgText, Body: e.Body}
}
