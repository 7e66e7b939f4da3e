// Package fakediscord is a fake Discord for tests: a loopback HTTP server
// that answers the REST routes a bot uses (gateway, gateway/bot, users/@me,
// channel messages and typing) and speaks the gateway websocket protocol
// (HELLO, IDENTIFY → READY, a close code or op 7, heartbeats, RESUME → RESUMED,
// dispatched events). Tests steer it (token, close codes, drops) and read
// back what the bot did (identifies, resumes, posted messages).
//
// Point a bot at it with api_url = Server.APIURL; the gateway URL comes from
// its /gateway and /gateway/bot answers.
package fakediscord

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
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

	http *httptest.Server

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
	reconnects           int
	identifies           int
	resumes              int
	dials                int
	heartbeats           int
	nextID               int64
	sessions             map[string]*session
	conns                map[*gwConn]struct{}
	messages             []PostedMessage
	typings              []string
	requests             []string
	restStatus           map[string]int
	rateLimit            rateLimit
	rateLimited          int
	closed               bool
	handlers             sync.WaitGroup
	upgrader             websocket.Upgrader
}

// session is a gateway session that can be resumed.
type session struct {
	id      string
	seq     int64
	pending [][]byte // dispatches queued while no connection was live
}

// New starts a fake Discord on 127.0.0.1 and stops it when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		token:         DefaultToken,
		heartbeat:     250 * time.Millisecond,
		ackHeartbeats: true,
		nextID:        2000000000000000000,
		sessions:      map[string]*session{},
		conns:         map[*gwConn]struct{}{},
		restStatus:    map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v10/gateway", s.handleGateway)
	mux.HandleFunc("GET /api/v10/gateway/bot", s.handleGatewayBot)
	mux.HandleFunc("GET /api/v10/users/@me", s.handleMe)
	mux.HandleFunc("POST /api/v10/channels/{id}/messages", s.handlePostMessage)
	mux.HandleFunc("POST /api/v10/channels/{id}/typing", s.handleTyping)
	mux.HandleFunc("GET /{$}", s.serveGateway)
	s.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	s.URL = s.http.URL
	s.APIURL = s.URL + "/api/v10"
	s.GatewayURL = "ws" + strings.TrimPrefix(s.URL, "http")
	t.Cleanup(s.Close)
	return s
}

// Close drops every gateway connection and stops the server. It is called
// automatically at the end of the test that created the server.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for c := range s.conns {
		_ = c.ws.Close()
	}
	s.mu.Unlock()
	s.http.CloseClientConnections()
	s.http.Close()
	s.handlers.Wait()
}

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
func (s *Server) SetRESTStatus(suffix string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		delete(s.restStatus, suffix)
		return
	}
	s.restStatus[suffix] = status
}

// rateLimit is a scripted 429 on the send route.
type rateLimit struct {
	retryAfter time.Duration
	times      int // answers left; negative: every one
	global     bool
}

// RateLimitSends makes the next times message posts (negative: all of them)
// answer 429 with retry_after, as Discord does, body and rate-limit headers
// alike. Zero times restores normal answers.
func (s *Server) RateLimitSends(retryAfter time.Duration, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateLimit = rateLimit{retryAfter: retryAfter, times: times}
}

// RateLimited returns how many requests the fake answered with 429.
func (s *Server) RateLimited() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rateLimited
}

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
	s.rateLimited++
	s.mu.Unlock()
	secs := rl.retryAfter.Seconds()
	h := w.Header()
	h.Set("Retry-After", fmt.Sprint(int(rl.retryAfter.Round(time.Second)/time.Second)))
	h.Set("X-RateLimit-Limit", "5")
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-Reset-After", fmt.Sprintf("%.3f", secs))
	h.Set("X-RateLimit-Bucket", bucket)
	h.Set("X-RateLimit-Scope", "user")
	writeJSON(w, http.StatusTooManyRequests, map[string]any{
		"message": "You are being rate limited.", "retry_after": secs, "global": rl.global,
	})
	return true
}

// Identifies returns how many IDENTIFY payloads the gateway received.
func (s *Server) Identifies() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.identifies
}

// Resumes returns how many RESUME payloads the gateway received.
func (s *Server) Resumes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resumes
}

// Dials returns how many gateway websocket connections were attempted.
func (s *Server) Dials() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dials
}

// Heartbeats returns how many heartbeats the gateway received.
func (s *Server) Heartbeats() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heartbeats
}

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
func (s *Server) Messages() []PostedMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]PostedMessage(nil), s.messages...)
}

// Typings returns the channel ids of the typing indicators the bot
// triggered, oldest first.
func (s *Server) Typings() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.typings...)
}

// Requests returns every HTTP request the server received as "METHOD PATH",
// oldest first, websocket upgrades included.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

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
	status := 0
	for suffix, st := range s.restStatus {
		if strings.HasSuffix(r.URL.Path, suffix) {
			status = st
		}
	}
	s.mu.Unlock()
	if r.Header.Get("Authorization") != want {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "401: Unauthorized", "code": 0})
		return false
	}
	if status != 0 {
		msg, code := http.StatusText(status), 0
		switch status { // what Discord says for the usual ones
		case http.StatusForbidden:
			msg, code = "Missing Permissions", 50013
		case http.StatusNotFound:
			msg, code = "Unknown Channel", 10003
		}
		writeJSON(w, status, map[string]any{"message": msg, "code": code})
		return false
	}
	return true
}

func (s *Server) handleGateway(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"url": s.GatewayURL})
}

func (s *Server) handleGatewayBot(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
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
	writeJSON(w, http.StatusOK, botUser())
}

func (s *Server) handlePostMessage(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) || s.limited(w, "messages:"+r.PathValue("id")) {
		return
	}
	var body discordgo.MessageSend
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": err.Error(), "code": 50109})
		return
	}
	if n := len([]rune(body.Content)); n == 0 || n > 2000 {
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"message": "Invalid Form Body", "code": 50035,
			"errors": map[string]any{"content": fmt.Sprintf("must be 1-2000 characters, got %d", n)},
		})
		return
	}
	channelID := r.PathValue("id")
	s.mu.Lock()
	pm := PostedMessage{ID: s.newID(), ChannelID: channelID, Content: body.Content, AllowedMentions: body.AllowedMentions}
	if body.Reference != nil {
		pm.ReplyToID = body.Reference.MessageID
	}
	s.messages = append(s.messages, pm)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, &discordgo.Message{
		ID: pm.ID, ChannelID: channelID, Content: pm.Content, Author: botUser(),
		Timestamp: time.Now(),
	})
}

func (s *Server) handleTyping(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	s.mu.Lock()
	s.typings = append(s.typings, r.PathValue("id"))
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func botUser() *discordgo.User {
	return &discordgo.User{ID: BotUserID, Username: BotUsername, Bot: true}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
