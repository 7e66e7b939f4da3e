package fakematrix

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// handleSync answers /sync: everything after the since token (everything
// when there is none), grouped by room, waiting up to timeout ms for
// something new when there is nothing yet, as a homeserver does.
func (s *Server) handleSync(w http.ResponseWriter, r *http.Request) {
	if !s.check(w, r) {
		return
	}
	q := r.URL.Query()
	since := int64(0)
	if tok := q.Get("since"); tok != "" {
		n, err := strconv.ParseInt(strings.TrimPrefix(tok, "s"), 10, 64)
		if err != nil || !strings.HasPrefix(tok, "s") {
			writeError(w, http.StatusBadRequest, "M_INVALID_PARAM", "bad since token", nil)
			return
		}
		since = n
	}
	timeout, _ := strconv.Atoi(q.Get("timeout"))
	deadline := time.NewTimer(time.Duration(timeout) * time.Millisecond)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		if s.pos > since || timeout == 0 {
			resp := s.syncLocked(since)
			s.mu.Unlock()
			writeJSON(w, http.StatusOK, resp)
			return
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
			// A token change answers a waiting poll with the new verdict.
			s.mu.Lock()
			ok := r.Header.Get("Authorization") == "Bearer "+s.token && !s.deactiv
			s.mu.Unlock()
			if !ok {
				writeError(w, http.StatusUnauthorized, "M_UNKNOWN_TOKEN", "Invalid access token passed.", nil)
				return
			}
		case <-deadline.C:
			timeout = 0
		case <-r.Context().Done():
			return
		}
	}
}

func (s *Server) syncLocked(since int64) map[string]any {
	join := map[string]any{}
	invite := map[string]any{}
	timelines := map[string][]*Event{}
	for _, ev := range s.events {
		if ev.Pos <= since {
			continue
		}
		rm := s.rooms[ev.RoomID]
		if rm == nil {
			continue
		}
		if ev.Type == "m.room.member" && ev.StateKey != nil && *ev.StateKey == BotUserID && ev.Content["membership"] == "invite" {
			if rm.invited[BotUserID] != "" {
				invite[ev.RoomID] = map[string]any{"invite_state": map[string]any{"events": []*Event{ev}}}
			}
			continue
		}
		if rm.members[BotUserID] {
			timelines[ev.RoomID] = append(timelines[ev.RoomID], ev)
		}
	}
	for roomID, evs := range timelines {
		join[roomID] = map[string]any{
			"timeline": map[string]any{"events": evs, "limited": false},
			"state":    map[string]any{"events": []any{}},
			"summary":  map[string]any{"m.joined_member_count": len(s.rooms[roomID].members)},
		}
	}
	return map[string]any{
		"next_batch": token(s.pos),
		"rooms":      map[string]any{"join": join, "invite": invite, "leave": map[string]any{}},
	}
}

// handleState answers GET /rooms/{room}/state/{type}/{key}: only
// m.room.encryption is kept as state.
func (s *Server) handleState(w http.ResponseWriter, r *http.Request) {
	if !s.check(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rm := s.rooms[r.PathValue("room")]
	if rm == nil || !rm.members[BotUserID] {
		writeError(w, http.StatusForbidden, "M_FORBIDDEN", "You aren't a member of the room.", nil)
		return
	}
	if r.PathValue("type") == "m.room.encryption" && rm.encrypted {
		writeJSON(w, http.StatusOK, map[string]any{"algorithm": "m.megolm.v1.aes-sha2"})
		return
	}
	writeError(w, http.StatusNotFound, "M_NOT_FOUND", "Event not found.", nil)
}
