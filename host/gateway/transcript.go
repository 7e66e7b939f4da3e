package gateway

import (
	"github.com/plughost/gateway/host/config"
	"github.com/plughost/gateway/shared"
)

// transcript answers a plugin's transcript request: the current
// conversation of the session a direct message in conv goes to, the
// newest messages that fit in one protocol message.
func (h *Host) transcript(platform string, conv shared.Conversation) (shared.Transcript, error) {
	platform = config.PlatformOfUnit(platform) // a shard's conversations are its platform's
	key := h.router.Key(platform, &shared.Message{ConversationID: conv.ConversationID, ThreadID: conv.ThreadID, Direct: true})
	msgs, cut, err := h.agents.Transcript(key, shared.MaxReplyBytesLimit)
	if err != nil {
		h.logger.Warn("could not read a transcript for a plugin", "platform", platform, "session", shared.LogValue(key), "error", err)
		return shared.Transcript{}, err
	}
	out := shared.Transcript{Messages: make([]shared.TranscriptMessage, len(msgs)), Truncated: cut}
	for i, m := range msgs {
		out.Messages[i] = shared.TranscriptMessage{Role: m.Role, Text: m.Content, UnixNano: m.Time.UnixNano()}
	}
	return out, nil
}
