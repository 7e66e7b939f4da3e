package adapter

import (
	"encoding/json"
	"net/url"
)

// The plugin's cursor (shared.Message.Cursor, kept by the host with each
// message it takes and handed back in Config.Cursor) is the gateway session
// and sequence number just after that message: what a RESUME needs. A
// plugin started again (after a crash, or on another host of a cluster that
// took the platform over) resumes that session, and Discord replays what was
// dispatched after the message, within its resume window; the host drops
// the ids it took already. When Discord no longer knows the session (op 9,
// not resumable) the plugin identifies afresh, as without a cursor.
type cursor struct {
	SessionID string `json:"session_id"`
	Seq       int64  `json:"seq"`
	ResumeURL string `json:"resume_gateway_url,omitempty"`
}

// cursorAt encodes the cursor after the event numbered seq of rs's session;
// "" when there is no session to resume.
func cursorAt(rs *resumeState, seq int64) string {
	if rs == nil || rs.sessionID == "" || seq <= 0 {
		return ""
	}
	b, err := json.Marshal(cursor{SessionID: rs.sessionID, Seq: seq, ResumeURL: rs.resumeURL})
	if err != nil {
		return ""
	}
	return string(b)
}

// parseCursor decodes a cursor; ok is false for "" or anything that is not
// a usable one (it is then ignored: the plugin identifies).
func parseCursor(s string) (c cursor, ok bool) {
	if s == "" || json.Unmarshal([]byte(s), &c) != nil || c.SessionID == "" || c.Seq <= 0 {
		return cursor{}, false
	}
	if c.ResumeURL != "" {
		u, err := url.Parse(c.ResumeURL)
		if err != nil || (u.Scheme != "wss" && u.Scheme != "ws") || u.Host == "" {
			c.ResumeURL = ""
		}
	}
	return c, true
}
