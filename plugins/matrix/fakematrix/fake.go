// Package fakematrix is a fake Matrix homeserver for tests: a loopback HTTP
// server answering the client-server API routes a bot uses (whoami,
// displayname, /sync with since tokens and long-poll timeouts, join,
// joined_members, send with transaction ids, typing). Tests steer it (rooms,
// messages, invites, token revocation, rate limits, failures) and read back
// what the bot did.
//
// Point a bot at it with homeserver = Server.URL.
package fakematrix

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plughost/gateway/shared/kit/fakekit"
)

// DefaultToken is the access token the fake accepts until SetToken changes it.
const DefaultToken = "fake-matrix-token"

// The bot account's identity.
const (
	BotUserID      = "@gatewaybot:fake.local"
	BotDisplayName = "Gateway Bot"
)

// Event is one room event as the fake stores and serves it.
type Event struct {
	Pos      int64          `json:"-"`
	RoomID   string         `json:"-"`
	ID       string         `json:"event_id"`
	Type     string         `json:"type"`
	Sender   string         `json:"sender"`
	StateKey *string        `json:"state_key,omitempty"`
	TS       int64          `json:"origin_server_ts"`
	Content  map[string]any `json:"content"`
}

// Sent is an event the bot sent through the API.
type Sent struct {
	RoomID  string
	EventID string
	TxnID   string
	Type    string
	Content map[string]any
}

// Body is the sent event's body.
func (s Sent) Body() string { b, _ := s.Content["body"].(string); return b }

// ThreadID is the thread root the event was sent into, or "".
func (s Sent) ThreadID() string {
	rel, _ := s.Content["m.relates_to"].(map[string]any)
	if rel == nil || rel["rel_type"] != "m.thread" {
		return ""
	}
	id, _ := rel["event_id"].(string)
	return id
}

// ReplyTo is the event id the sent event replies to, or "".
func (s Sent) ReplyTo() string {
	rel, _ := s.Content["m.relates_to"].(map[string]any)
	irt, _ := rel["m.in_reply_to"].(map[string]any)
	id, _ := irt["event_id"].(string)
	return id
}

type room struct {
	members   map[string]bool // joined
	invited   map[string]string
	encrypted bool
}

// Server is a running fake homeserver. Its methods are safe for concurrent
// use.
type Server struct {
	// URL is the homeserver base URL, http://127.0.0.1:PORT.
	URL string

	srv  *fakekit.Server
	sent *fakekit.Log[Sent]

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever an event is added
	token    string
	deactiv  bool
	pos      int64
	events   []*Event
	rooms    map[string]*room
	txns     map[string]string // txn id → event id
	failNext map[string][]int  // path part → statuses to answer, in order
	limitMS  map[string]int64  // path part → retry_after_ms of a 429
	closed   bool
}

// New starts a fake homeserver that is closed when the test ends.
func New(t testing.TB) *Server {
	s := &Server{
		changed:  make(chan struct{}),
		token:    DefaultToken,
		rooms:    map[string]*room{},
		txns:     map[string]string{},
		failNext: map[string][]int{},
		limitMS:  map[string]int64{},
	}
	s.srv = fakekit.NewServer(t)
	s.URL = s.srv.URL
	s.sent = fakekit.NewLog[Sent](s.srv, "sent")
	mux := s.srv
	mux.HandleFunc("GET /_matrix/client/v3/account/whoami", s.handleWhoami)
	mux.HandleFunc("GET /_matrix/client/v3/profile/{user}/displayname", s.handleDisplayName)
	mux.HandleFunc("GET /_matrix/client/v3/sync", s.handleSync)
	mux.HandleFunc("POST /_matrix/client/v3/join/{room}", s.handleJoin)
	mux.HandleFunc("POST /_matrix/client/v3/rooms/{room}/join", s.handleJoin)
	mux.HandleFunc("GET /_matrix/client/v3/rooms/{room}/joined_members", s.handleMembers)
	mux.HandleFunc("PUT /_matrix/client/v3/rooms/{room}/send/{type}/{txn}", s.handleSend)
	mux.HandleFunc("PUT /_matrix/client/v3/rooms/{room}/typing/{user}", s.handleTyping)
	mux.HandleFunc("GET /_matrix/client/v3/rooms/{room}/state/{type}/{key}", s.handleState)
	mux.HandleFunc("GET /_matrix/client/v3/rooms/{room}/state/{type}/", s.handleState)
	s.controls()
	t.Cleanup(s.Close) // runs before the server's own cleanup: ends long polls first
	return s
}

// Close stops the server, ending long polls at once.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.notifyLocked()
	s.mu.Unlock()
	s.srv.Close()
}

// SetToken changes the accepted access token; requests with the old one get
// 401 M_UNKNOWN_TOKEN from then on.
func (s *Server) SetToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
	s.notifyLocked() // a waiting long poll answers with the new verdict
}

// Deactivate makes every request answer 401 M_USER_DEACTIVATED.
func (s *Server) Deactivate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deactiv = true
	s.notifyLocked()
}

// FailNext makes the next len(statuses) requests whose path contains route
// (e.g. "/sync", "/send/") answer with those HTTP statuses.
func (s *Server) FailNext(route string, statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext[route] = append(s.failNext[route], statuses...)
}

// RateLimit makes requests whose path contains route answer 429
// M_LIMIT_EXCEEDED with retry_after_ms = ms until ms is 0.
func (s *Server) RateLimit(route string, ms int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ms <= 0 {
		delete(s.limitMS, route)
		return
	}
	s.limitMS[route] = ms
}

// RateLimitHits is how many requests were answered 429.
func (s *Server) RateLimitHits() int { return s.srv.Stats.Get("rate_limited") }

// CreateRoom makes a room with the given joined members (the bot is added
// when it is not among them) and returns its id.
func (s *Server) CreateRoom(roomID string, encrypted bool, members ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &room{members: map[string]bool{BotUserID: true}, invited: map[string]string{}, encrypted: encrypted}
	for _, m := range members {
		r.members[m] = true
		s.addLocked(roomID, "m.room.member", m, ptr(m), map[string]any{"membership": "join"})
	}
	s.rooms[roomID] = r
	s.addLocked(roomID, "m.room.member", BotUserID, ptr(BotUserID), map[string]any{"membership": "join"})
	if encrypted {
		s.addLocked(roomID, "m.room.encryption", members[0], ptr(""), map[string]any{"algorithm": "m.megolm.v1.aes-sha2"})
	}
	return roomID
}

// Invite invites the bot to a new room from inviter; the room exists with
// inviter as its only joined member until the bot joins.
func (s *Server) Invite(roomID, inviter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rooms[roomID] = &room{members: map[string]bool{inviter: true}, invited: map[string]string{BotUserID: inviter}}
	s.addLocked(roomID, "m.room.member", inviter, ptr(BotUserID), map[string]any{"membership": "invite"})
}

// Joined reports whether the bot has joined roomID.
func (s *Server) Joined(roomID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[roomID]
	return r != nil && r.members[BotUserID]
}

// Say posts a text message from sender in roomID and returns its event id.
// extra is merged into the content (m.mentions, m.relates_to, ...).
func (s *Server) Say(roomID, sender, body string, extra map[string]any) string {
	content := map[string]any{"msgtype": "m.text", "body": body}
	for k, v := range extra {
		content[k] = v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addLocked(roomID, "m.room.message", sender, nil, content).ID
}

// SayEncrypted posts an m.room.encrypted event from sender in roomID.
func (s *Server) SayEncrypted(roomID, sender string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addLocked(roomID, "m.room.encrypted", sender, nil, map[string]any{
		"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnAC", "session_id": "x", "device_id": "D"}).ID
}

// Sent returns what the bot sent, in order.
func (s *Server) Sent() []Sent { return s.sent.All() }

// Typings is how many typing notifications the bot sent.
func (s *Server) Typings() int { return s.srv.Stats.Get("typing") }

// Requests returns "METHOD path" of every request, in order.
func (s *Server) Requests() []string { return s.srv.Requests() }

// Position is the stream position of the newest event, as a sync token.
func (s *Server) Position() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return token(s.pos)
}

func ptr(s string) *string { return &s }

func token(pos int64) string { return "s" + strconv.FormatInt(pos, 10) }

func (s *Server) addLocked(roomID, typ, sender string, stateKey *string, content map[string]any) *Event {
	s.pos++
	ev := &Event{Pos: s.pos, RoomID: roomID, ID: fmt.Sprintf("$ev%d:fake.local", s.pos), Type: typ,
		Sender: sender, StateKey: stateKey, TS: time.Now().UnixMilli(), Content: content}
	s.events = append(s.events, ev)
	s.notifyLocked()
	return ev
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// check records the request and answers the failures tests asked for. It
// returns false when it has answered.
func (s *Server) check(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	auth := r.Header.Get("Authorization")
	switch {
	case auth == "":
		writeError(w, http.StatusUnauthorized, "M_MISSING_TOKEN", "Missing access token", nil)
		return false
	case auth != "Bearer "+s.token:
		writeError(w, http.StatusUnauthorized, "M_UNKNOWN_TOKEN", "Invalid access token passed.", map[string]any{"soft_logout": false})
		return false
	case s.deactiv:
		writeError(w, http.StatusUnauthorized, "M_USER_DEACTIVATED", "This account has been deactivated", nil)
		return false
	}
	for route, ms := range s.limitMS {
		if strings.Contains(r.URL.Path, route) {
			s.srv.Stats.Inc("rate_limited")
			writeError(w, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED", "Too Many Requests", map[string]any{"retry_after_ms": ms})
			return false
		}
	}
	for route, statuses := range s.failNext {
		if strings.Contains(r.URL.Path, route) && len(statuses) > 0 {
			s.failNext[route] = statuses[1:]
			writeError(w, statuses[0], "M_UNKNOWN", "injected failure", nil)
			return false
		}
	}
	return true
}

func (s *Server) handleWhoami(w http.ResponseWriter, r *http.Request) {
	if !s.check(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user_id": BotUserID, "device_id": "GATEWAY"})
}

func (s *Server) handleDisplayName(w http.ResponseWriter, r *http.Request) {
	if !s.check(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"displayname": BotDisplayName})
}

func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request) {
	if !s.check(w, r) {
		return
	}
	roomID := r.PathValue("room")
	s.mu.Lock()
	defer s.mu.Unlock()
	rm := s.rooms[roomID]
	if rm == nil || (rm.invited[BotUserID] == "" && !rm.members[BotUserID]) {
		writeError(w, http.StatusForbidden, "M_FORBIDDEN", "You are not invited to this room.", nil)
		return
	}
	delete(rm.invited, BotUserID)
	if !rm.members[BotUserID] {
		rm.members[BotUserID] = true
		s.addLocked(roomID, "m.room.member", BotUserID, ptr(BotUserID), map[string]any{"membership": "join"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"room_id": roomID})
}

func (s *Server) handleMembers(w http.ResponseWriter, r *http.Request) {
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
	joined := map[string]any{}
	for m := range rm.members {
		joined[m] = map[string]any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"joined": joined})
}

func (s *Server) handleSend(w http.ResponseWriter, r *http.Request) {
	if !s.check(w, r) {
		return
	}
	var content map[string]any
	if err := json.NewDecoder(r.Body).Decode(&content); err != nil {
		writeError(w, http.StatusBadRequest, "M_NOT_JSON", err.Error(), nil)
		return
	}
	roomID, typ, txn := r.PathValue("room"), r.PathValue("type"), r.PathValue("txn")
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.txns[txn]; ok {
		writeJSON(w, http.StatusOK, map[string]any{"event_id": id}) // idempotent, as the spec says
		return
	}
	rm := s.rooms[roomID]
	if rm == nil || !rm.members[BotUserID] {
		writeError(w, http.StatusForbidden, "M_FORBIDDEN", "You aren't a member of the room.", nil)
		return
	}
	ev := s.addLocked(roomID, typ, BotUserID, nil, content)
	s.txns[txn] = ev.ID
	s.sent.Add(Sent{RoomID: roomID, EventID: ev.ID, TxnID: txn, Type: typ, Content: content})
	writeJSON(w, http.StatusOK, map[string]any{"event_id": ev.ID})
}

func (s *Server) handleTyping(w http.ResponseWriter, r *http.Request) {
	if !s.check(w, r) {
		return
	}
	s.srv.Stats.Inc("typing")
	writeJSON(w, http.StatusOK, map[string]any{})
}

func writeJSON(w http.ResponseWriter, status int, v any) { fakekit.WriteJSON(w, status, v) }

func writeError(w http.ResponseWriter, status int, code, msg string, extra map[string]any) {
	body := map[string]any{"errcode": code, "error": msg}
	for k, v := range extra {
		body[k] = v
	}
	writeJSON(w, status, body)
}

// controls serves the fake's control API (POST /_fake/NAME), for a fake
// driven from another process: say, invite, create_room, set_token.
func (s *Server) controls() {
	s.srv.Control("say", func(in json.RawMessage) (any, error) {
		var req struct{ Room, Sender, Body string }
		if err := json.Unmarshal(in, &req); err != nil {
			return nil, err
		}
		return map[string]string{"event_id": s.Say(req.Room, req.Sender, req.Body, nil)}, nil
	})
	s.srv.Control("create_room", func(in json.RawMessage) (any, error) {
		var req struct {
			Room      string
			Encrypted bool
			Members   []string
		}
		if err := json.Unmarshal(in, &req); err != nil || len(req.Members) == 0 {
			return nil, fmt.Errorf("create_room needs a room and members: %v", err)
		}
		return map[string]string{"room_id": s.CreateRoom(req.Room, req.Encrypted, req.Members...)}, nil
	})
	s.srv.Control("invite", func(in json.RawMessage) (any, error) {
		var req struct{ Room, Inviter string }
		if err := json.Unmarshal(in, &req); err != nil {
			return nil, err
		}
		s.Invite(req.Room, req.Inviter)
		return nil, nil
	})
	s.srv.Control("set_token", func(in json.RawMessage) (any, error) {
		var req struct{ Token string }
		if err := json.Unmarshal(in, &req); err != nil {
			return nil, err
		}
		s.SetToken(req.Token)
		return nil, nil
	})
}
