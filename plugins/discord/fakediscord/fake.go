// Package fakediscord is a fake Discord for tests: a loopback HTTP server
// that answers the REST routes a bot uses (gateway, gateway/bot, users/@me,
// channel messages and typing) and speaks the gateway websocket protocol
// (HELLO, IDENTIFY → READY, a close code or op 7, heartbeats, RESUME →
// RESUMED, dispatched events). Tests steer it (token, close codes, drops,
// op 7 storms, 429s on sends) and read back what the bot did (identifies,
// resumes, posted messages).
//
// Point a bot at it with api_url = Server.APIURL; the gateway URL comes from
// its /gateway and /gateway/bot answers.
package fakediscord

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"

	"github.com/plughost/gateway/shared/kit/fakekit"
)

// DefaultToken is the bot token the fake accepts until SetToken changes it.
const DefaultToken = "fake-token"

// The fake bot's identity, answered by users/@me and READY.
const (
	BotUserID   = "1000000000000000001"
	BotUsername = "gateway-bot"
)

// PostedMessage is a message the bot posted through the REST API.
type PostedMessage struct {
	// ID is the id the fake gave the message.
	ID        string
	ChannelID string
	Content   string
	// ReplyToID is message_reference.message_id, empty when not a reply.
	ReplyToID string
	// AllowedMentions is the allowed_mentions object as sent, nil if absent.
	AllowedMentions *discordgo.MessageAllowedMentions
}

// Server is a running fake Discord. Its methods are safe for concurrent use.
type Server struct {
	// URL is the server's base URL, http://127.0.0.1:PORT.
	URL string
	// APIURL is the REST base to configure as api_url (URL + "/api/v10").
	APIURL string
	// GatewayURL is the websocket URL the fake hands out, ws://127.0.0.1:PORT
	// (served at "/", like wss://gateway.discord.gg).
	GatewayURL string

	http     *fakekit.Server
	stats    *fakekit.Stats
	messages *fakekit.Log[PostedMessage]
	typings  *fakekit.Log[string]

	mu            sync.Mutex
	token         string
	heartbeat     time.Duration
	ackHeartbeats bool
	silent        bool
	identifyClose int
	// reconnectOnIdentify: IDENTIFYs still to answer with op 7 (negative:
	// all); reconnectAfterResume: op 7 after every RESUMED.
	reconnectOnIdentify  int
	reconnectAfterResume bool
	rateLimit            rateLimit
	nextID               int64
	sessions             map[string]*session
	conns                map[*gwConn]struct{}
	upgrader             websocket.Upgrader
	identified           []Identify
	maxLive              int
	// shown is each posted message's content now (edits applied);
	// deleted messages are removed.
	shown map[string]string
	edits int
}

// session is a gateway session that can be resumed.
type session struct {
	id  string
	seq int64
	// shard of shards, from IDENTIFY (0 of 1 when the bot did not shard).
	shard, shards int
	// log is the session's last dispatches, replayed after a RESUME's seq.
	log []logged
}

// Counters in the fake's stats (GET /_fake/stats).
const (
	statIdentifies = "identifies"
	statResumes    = "resumes"
	statDials      = "dials"
	statHeartbeats = "heartbeats"
	statReconnects = "reconnects"   // op 7s sent
	statLimited    = "rate_limited" // 429s answered
)

// New starts a fake Discord on 127.0.0.1 and stops it when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	srv := fakekit.NewServer(t)
	srv.FaultBody = func(status int) any {
		switch status { // what Discord says for the usual ones
		case http.StatusForbidden:
			return map[string]any{"message": "Missing Permissions", "code": 50013}
		case http.StatusNotFound:
			return map[string]any{"message": "Unknown Channel", "code": 10003}
		}
		return map[string]any{"message": http.StatusText(status), "code": 0}
	}
	s := &Server{
		URL:           srv.URL,
		APIURL:        srv.URL + "/api/v10",
		GatewayURL:    "ws" + strings.TrimPrefix(srv.URL, "http"),
		http:          srv,
		stats:         &srv.Stats,
		messages:      fakekit.NewLog[PostedMessage](srv, "posted"),
		typings:       fakekit.NewLog[string](srv, "typings"),
		token:         DefaultToken,
		heartbeat:     250 * time.Millisecond,
		ackHeartbeats: true,
		nextID:        2000000000000000000,
		sessions:      map[string]*session{},
		conns:         map[*gwConn]struct{}{},
		shown:         map[string]string{},
	}
	srv.HandleFunc("GET /api/v10/gateway", s.handleGateway)
	srv.HandleFunc("GET /api/v10/gateway/bot", s.handleGatewayBot)
	srv.HandleFunc("GET /api/v10/users/@me", s.handleMe)
	srv.HandleFunc("POST /api/v10/channels/{id}/messages", s.handlePostMessage)
	srv.HandleFunc("POST /api/v10/channels/{id}/typing", s.handleTyping)
	srv.HandleFunc("PATCH /api/v10/channels/{id}/messages/{mid}", s.handleEditMessage)
	srv.HandleFunc("DELETE /api/v10/channels/{id}/messages/{mid}", s.handleDeleteMessage)
	srv.HandleFunc("GET /{$}", s.serveGateway)
	s.control()
	return s
}

// control adds the control API (POST /_fake/NAME), for driving the fake
// from outside the test's process.
func (s *Server) control() {
	s.http.Control("message", func(in json.RawMessage) (any, error) {
		var m discordgo.Message
		if err := json.Unmarshal(in, &m); err != nil {
			return nil, err
		}
		return s.InjectMessage(&m), nil
	})
	s.http.Control("token", func(in json.RawMessage) (any, error) {
		var token string
		if err := json.Unmarshal(in, &token); err != nil {
			return nil, err
		}
		s.SetToken(token)
		return nil, nil
	})
	s.http.Control("drop", func(json.RawMessage) (any, error) { return s.Drop(), nil })
	s.http.Control("reconnect", func(json.RawMessage) (any, error) { return s.RequestReconnect(), nil })
	s.http.Control("close", func(in json.RawMessage) (any, error) {
		var c struct {
			Code int    `json:"code"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(in, &c); err != nil {
			return nil, err
		}
		return s.CloseWith(c.Code, c.Text), nil
	})
}

// Close drops every gateway connection and stops the server. It is called
// automatically at the end of the test that created the server.
func (s *Server) Close() { s.http.Close() }

// SetToken changes the token the fake accepts. Changing it while a bot is
// connected is how a test revokes the bot's token: REST calls answer 401 and
// the next IDENTIFY or RESUME is closed with 4004.
func (s *Server) SetToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// SetHeartbeatInterval sets the interval announced in HELLO to new
// connections (default 250ms).
func (s *Server) SetHeartbeatInterval(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.heartbeat = d
}

// SetAckHeartbeats makes the gateway acknowledge heartbeats (the default) or
// ignore them, which makes a connection look dead to the bot.
func (s *Server) SetAckHeartbeats(ack bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ackHeartbeats = ack
}

// SetSilent makes new gateway connections never send HELLO, like a gateway
// that accepts the websocket and then hangs.
func (s *Server) SetSilent(silent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent = silent
}

// SetIdentifyCloseCode makes the gateway answer every IDENTIFY with a
// close frame carrying code (for example 4014, disallowed intents) instead
// of READY. Zero restores READY.
func (s *Server) SetIdentifyCloseCode(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.identifyClose = code
}

// SetRESTStatus makes every request whose path ends with suffix (for example
// "/messages", or "/channels/C1/messages" for one channel) fail with status,
// with Discord's message for 403 (Missing Permissions) and 404 (Unknown
// Channel). Zero restores normal answers.
func (s *Server) SetRESTStatus(suffix string, status int) { s.http.SetFault(suffix, status) }

// rateLimit is a scripted 429 on the send route.
type rateLimit struct {
	retryAfter time.Duration
	times      int // answers left; negative: every one
}

// RateLimit makes the next n message posts (negative: all of them) answer
// 429 with retry_after, as Discord does when a channel's bucket is spent,
// body and rate-limit headers alike. Zero restores normal answers.
func (s *Server) RateLimit(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateLimit = rateLimit{retryAfter: retryAfter, times: n}
}

// RateLimited returns how many requests the fake answered with 429.
func (s *Server) RateLimited() int { return s.stats.Get(statLimited) }

// limited answers 429 when a scripted rate limit applies.
func (s *Server) limited(w http.ResponseWriter, bucket string) bool {
	s.mu.Lock()
	rl := s.rateLimit
	if rl.times == 0 {
		s.mu.Unlock()
		return false
	}
	if s.rateLimit.times > 0 {
		s.rateLimit.times--
	}
	s.mu.Unlock()
	s.stats.Inc(statLimited)
	secs := rl.retryAfter.Seconds()
	h := w.Header()
	h.Set("Retry-After", fmt.Sprint(int(rl.retryAfter.Round(time.Second)/time.Second)))
	h.Set("X-RateLimit-Limit", "5")
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-Reset-After", fmt.Sprintf("%.3f", secs))
	h.Set("X-RateLimit-Bucket", bucket)
	h.Set("X-RateLimit-Scope", "user")
	fakekit.WriteJSON(w, http.StatusTooManyRequests, map[string]any{
		"message": "You are being rate limited.", "retry_after": secs, "global": false,
	})
	return true
}

// Identifies returns how many IDENTIFY payloads the gateway received.
func (s *Server) Identifies() int { return s.stats.Get(statIdentifies) }

// Resumes returns how many RESUME payloads the gateway received.
func (s *Server) Resumes() int { return s.stats.Get(statResumes) }

// Dials returns how many gateway websocket connections were attempted.
func (s *Server) Dials() int { return s.stats.Get(statDials) }

// Heartbeats returns how many heartbeats the gateway received.
func (s *Server) Heartbeats() int { return s.stats.Get(statHeartbeats) }

// Reconnects returns how many op 7 (Reconnect) payloads the gateway sent.
func (s *Server) Reconnects() int { return s.stats.Get(statReconnects) }

// Connections returns how many gateway connections are open and past
// READY or RESUMED.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if c.session != nil {
			n++
		}
	}
	return n
}

// Messages returns the messages the bot posted, oldest first.
func (s *Server) Messages() []PostedMessage { return s.messages.All() }

// WaitMessage waits for a posted message that match accepts and returns it.
func (s *Server) WaitMessage(t testing.TB, timeout time.Duration, what string, match func(PostedMessage) bool) PostedMessage {
	t.Helper()
	return s.messages.Wait(t, timeout, what, match)
}

// Typings returns the channel ids of the typing indicators the bot
// triggered, oldest first.
func (s *Server) Typings() []string { return s.typings.All() }

// Requests returns every HTTP request the server received as "METHOD PATH",
// oldest first, websocket upgrades included.
func (s *Server) Requests() []string { return s.http.Requests() }

// newID returns a fresh snowflake-like id. Callers hold s.mu.
func (s *Server) newID() string {
	s.nextID++
	return fmt.Sprint(s.nextID)
}

// authorized reports whether r carries the bot token, writing a 401 when it
// does not.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	want := "Bot " + s.token
	s.mu.Unlock()
	if r.Header.Get("Authorization") != want {
		fakekit.WriteJSON(w, http.StatusUnauthorized, map[string]any{"message": "401: Unauthorized", "code": 0})
		return false
	}
	return true
}

func (s *Server) handleGateway(w http.ResponseWriter, _ *http.Request) {
	fakekit.WriteJSON(w, http.StatusOK, map[string]any{"url": s.GatewayURL})
}

func (s *Server) handleGatewayBot(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	fakekit.WriteJSON(w, http.StatusOK, map[string]any{
		"url":    s.GatewayURL,
		"shards": 1,
		"session_start_limit": map[string]any{
			"total": 1000, "remaining": 1000, "reset_after": 86400000, "max_concurrency": 1,
		},
	})
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	fakekit.WriteJSON(w, http.StatusOK, botUser())
}

// Shown returns the messages the bot posted that still exist, oldest first,
// each with its content now (after edits).
func (s *Server) Shown() []PostedMessage {
	posted := s.messages.All()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PostedMessage, 0, len(posted))
	for _, m := range posted {
		if c, ok := s.shown[m.ID]; ok {
			m.Content = c
			out = append(out, m)
		}
	}
	return out
}

// Edits returns how many message edits the fake accepted.
func (s *Server) Edits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.edits
}

func (s *Server) handleEditMessage(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) || s.limited(w, "messages:"+r.PathValue("id")) {
		return
	}
	var body discordgo.MessageEdit
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Content == nil {
		fakekit.WriteJSON(w, http.StatusBadRequest, map[string]any{"message": "bad edit", "code": 50109})
		return
	}
	if n := len([]rune(*body.Content)); n == 0 || n > 2000 {
		fakekit.WriteJSON(w, http.StatusBadRequest, map[string]any{"message": "Invalid Form Body", "code": 50035})
		return
	}
	id := r.PathValue("mid")
	s.mu.Lock()
	_, ok := s.shown[id]
	if ok {
		s.shown[id] = *body.Content
		s.edits++
	}
	s.mu.Unlock()
	if !ok {
		fakekit.WriteJSON(w, http.StatusNotFound, map[string]any{"message": "Unknown Message", "code": 10008})
		return
	}
	fakekit.WriteJSON(w, http.StatusOK, &discordgo.Message{
		ID: id, ChannelID: r.PathValue("id"), Content: *body.Content, Author: botUser(), Timestamp: time.Now(),
	})
}

func (s *Server) handleDeleteMessage(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	s.mu.Lock()
	delete(s.shown, r.PathValue("mid"))
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handlePostMessage(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) || s.limited(w, "messages:"+r.PathValue("id")) {
		return
	}
	var body discordgo.MessageSend
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		fakekit.WriteJSON(w, http.StatusBadRequest, map[string]any{"message": err.Error(), "code": 50109})
		return
	}
	if n := len([]rune(body.Content)); n == 0 || n > 2000 {
		fakekit.WriteJSON(w, http.StatusBadRequest, map[string]any{
			"message": "Invalid Form Body", "code": 50035,
			"errors": map[string]any{"content": fmt.Sprintf("must be 1-2000 characters, got %d", n)},
		})
		return
	}
	channelID := r.PathValue("id")
	s.mu.Lock()
	pm := PostedMessage{ID: s.newID(), ChannelID: channelID, Content: body.Content, AllowedMentions: body.AllowedMentions}
	s.mu.Unlock()
	if body.Reference != nil {
		pm.ReplyToID = body.Reference.MessageID
	}
	s.mu.Lock()
	s.shown[pm.ID] = pm.Content
	s.mu.Unlock()
	s.messages.Add(pm)
	fakekit.WriteJSON(w, http.StatusOK, &discordgo.Message{
		ID: pm.ID, ChannelID: channelID, Content: pm.Content, Author: botUser(),
		Timestamp: time.Now(),
	})
}

func (s *Server) handleTyping(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	s.typings.Add(r.PathValue("id"))
	w.WriteHeader(http.StatusNoContent)
}

func botUser() *discordgo.User {
	return &discordgo.User{ID: BotUserID, Username: BotUsername, Bot: true}
}

// logged is one dispatch of a session, by sequence number.
type logged struct {
	seq int64
	raw []byte
}

// sessionLogSize bounds the dispatches a session keeps for replay.
const sessionLogSize = 1000

// record keeps a dispatch for replay; s.mu is held.
func (sess *session) record(seq int64, raw []byte) {
	sess.log = append(sess.log, logged{seq, raw})
	if len(sess.log) > sessionLogSize {
		sess.log = sess.log[len(sess.log)-sessionLogSize:]
	}
}
