package agent

import (
	"fmt"
	"slices"

	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/shared"
)

// messageOverhead is what a transcript message costs beside its text
// (role, time, framing), counted against Transcript's maxBytes.
const messageOverhead = 32

// Transcript returns what the user and the agent said in the session's
// current transcript (since the last /new), oldest first, for a platform
// that shows the conversation again (the web page after a reload): the
// user's messages and the agent's replies, without tool rounds and
// without turns whose reply never reached the user. When their text
// exceeds maxBytes (> 0) only the newest that fit are returned and cut is
// true.
func (s *Service) Transcript(key string, maxBytes int) (msgs []store.Message, cut bool, err error) {
	sess, err := s.store.Session(key)
	if err != nil {
		return nil, false, fmt.Errorf("session %s: %w", shared.LogValue(key), err)
	}
	all, err := s.store.Transcript(key, sess.Epoch)
	if err != nil {
		return nil, false, fmt.Errorf("transcript of session %s: %w", shared.LogValue(key), err)
	}
	size := 0
	for i := len(all) - 1; i >= 0; i-- {
		m := all[i]
		if m.Undelivered || m.Content == "" || (m.Role != string(provider.RoleUser) && m.Role != string(provider.RoleAssistant)) {
			continue
		}
		// Each message costs its text and a little framing on the wire.
		if size += len(m.Content) + messageOverhead; maxBytes > 0 && size > maxBytes {
			cut = true
			break
		}
		msgs = append(msgs, m)
	}
	slices.Reverse(msgs)
	return msgs, cut, nil
}
