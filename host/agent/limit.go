package agent

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/plughost/gateway/shared"
)

// maxReplyBytes is the agent block's max_reply_bytes.
func (s *Service) maxReplyBytes() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch n := s.cfg.MaxReplyBytes; {
	case n <= 0:
		return DefaultMaxReplyBytes
	case n > shared.MaxReplyBytesLimit:
		return shared.MaxReplyBytesLimit
	default:
		return n
	}
}

// capReply cuts a reply longer than limit bytes where it is produced,
// before it is recorded or delivered: every platform, the plugin protocol and
// the session's history then carry at most limit bytes, the note saying it
// was cut included. It cuts at a line break, else a space, near the limit,
// never inside a UTF-8 sequence, and closes a code block left open.
func capReply(text string, limit int) (string, bool) {
	if len(text) <= limit {
		return text, false
	}
	note := fmt.Sprintf("\n\n[Reply cut: it was %d bytes, over the gateway's limit of %d (max_reply_bytes).]", len(text), limit)
	const fence = "\n```"
	cut := max(0, limit-len(note)-len(fence))
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	window := max(0, cut-1024)
	if i := strings.LastIndexByte(text[window:cut], '\n'); i >= 0 {
		cut = window + i
	} else if i := strings.LastIndexByte(text[window:cut], ' '); i >= 0 {
		cut = window + i
	}
	out := strings.TrimRight(text[:cut], " \n")
	if strings.Count(out, "```")%2 == 1 {
		out += fence
	}
	return out + note, true
}
