// Package fakeslack is a fake Slack for tests: a loopback HTTP server that
// answers the Web API methods a Socket Mode bot uses (auth.test,
// apps.connections.open, chat.postMessage) and speaks the Socket Mode
// websocket protocol (hello, events_api envelopes that must be
// acknowledged, disconnect, server pings). Tests steer it (revoke tokens,
// drop connections, force 429s and API errors, redeliver envelopes) and read
// back what the bot did (requests, acknowledgements, posted messages, open
// connections).
//
// Point a bot at it with api_url = Server.APIURL and the tokens
// DefaultBotToken and DefaultAppToken; the websocket URL comes from its
// apps.connections.open answer, as with Slack.
package fakeslack

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/plughost/gateway/shared/kit/fakekit"
)

// The tokens the fake accepts until a test revokes them.
const (
	DefaultBotToken = "xoxb-fake-bot-token"
	DefaultAppToken = "xapp-fake-app-token"
)

// The fake workspace and bot, as auth.test and events name them.
const (
	TeamID    = "T0FAKE"
	AppID     = "A0FAKE"
	BotUserID = "U0BOT"
	BotID     = "B0BOT"
	BotName   = "gateway-bot"
)

// MaxTextLength is the longest chat.postMessage text the fake accepts;
// Slack answers msg_too_long past it.
const MaxTextLength = 40000

// PostedMessage is a message the bot posted with chat.postMessage.
type PostedMessage struct {
	Channel  string
	ThreadTS string
	Text     string
	// TS is the timestamp the fake gave the message (its id).
	TS string
}

// Server is a running fake Slack. Its methods are safe for concurrent use.
// A test in the same process calls them; a fake run as its own process is
// driven the same way through its control API (POST URL/_fake/NAME, see
// control), and read through GET /_fake/stats, /_fake/requests,
// /_fake/log/posted and /_fake/log/acks.
type Server struct {
	// URL is the server's base URL, http://127.0.0.1:PORT.
	URL string
	// APIURL is the Web API base to configure as api_url (URL + "/api/").
	APIURL string

	http   *fakekit.Server
	posted *fakekit.Log[PostedMessage]
	acks   *fakekit.Log[string]

	mu           sync.Mutex
	botToken     string
	appToken     string
	botError     string // error answered for the bot token once revoked
	appError     string
	methodErrors map[string]string
	limits       map[string]*rateLimit
	pingInterval time.Duration
	pings        bool
	loseAcks     bool // acknowledgements are lost on the way (see LoseAcks)
	tickets      map[string]bool
	conns        map[*sockConn]struct{}
	maxOpen      int
	nextTS       int64
	nextID       int
	envelopes    map[string]*envelope
	queue        []*envelope // waiting for a connection
	rr           int
	upgrader     websocket.Upgrader
}

// Counters in the fake's stats (GET /_fake/stats).
const (
	statOpened       = "connections_opened"
	statEarlyRetries = "early_retries"
	statRedelivered  = "redelivered"
	statLostAcks     = "lost_acks"
)

// rateLimit makes the next n calls of a method answer 429.
type rateLimit struct {
	n          int
	retryAfter time.Duration
	until      time.Time // calls before this are early retries
}

// New starts a fake Slack on 127.0.0.1 and stops it when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := Start()
	t.Cleanup(s.Close)
	return s
}

// Start starts a fake Slack; the caller closes it. Use it where there is no
// test, as in a fake run as its own process.
func Start() *Server {
	srv := fakekit.Start()
	srv.FaultBody = func(status int) any {
		return map[string]any{"ok": false, "error": http.StatusText(status)}
	}
	s := &Server{
		URL:          srv.URL,
		APIURL:       srv.URL + "/api/",
		http:         srv,
		posted:       fakekit.NewLog[PostedMessage](srv, "posted"),
		acks:         fakekit.NewLog[string](srv, "acks"),
		botToken:     DefaultBotToken,
		appToken:     DefaultAppToken,
		methodErrors: map[string]string{},
		limits:       map[string]*rateLimit{},
		pingInterval: 200 * time.Millisecond,
		pings:        true,
		tickets:      map[string]bool{},
		conns:        map[*sockConn]struct{}{},
		nextTS:       1_700_000_000_000_000,
		envelopes:    map[string]*envelope{},
		// slack-go dials with Origin https://api.slack.com.
		upgrader: websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }},
	}
	srv.HandleFunc("POST /api/auth.test", s.handleAuthTest)
	srv.HandleFunc("POST /api/apps.connections.open", s.handleConnectionsOpen)
	srv.HandleFunc("POST /api/chat.postMessage", s.handlePostMessage)
	srv.HandleFunc("GET /link/", s.serveSocket)
	srv.HandleFunc("POST /api/{method}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "unknown_method"})
	})
	s.control()
	return s
}

// Close drops every Socket Mode connection and stops the server. It is
// called automatically at the end of the test that created the server.
func (s *Server) Close() { s.http.Close() }

// SetHTTPStatus makes every call of a Web API method (or the websocket
// endpoint, "link") answer an HTTP status such as 500 or 503; zero
// restores it.
func (s *Server) SetHTTPStatus(method string, status int) {
	s.http.SetFault("/"+method, status)
}

// RevokeBotToken makes every call with the bot token answer code (for
// example "token_revoked", "invalid_auth" or "token_expired").
func (s *Server) RevokeBotToken(code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.botError = code
}

// RevokeAppToken makes every apps.connections.open answer code, and closes
// the open Socket Mode connections, as Slack does when an app-level token
// is revoked.
func (s *Server) RevokeAppToken(code string) {
	s.mu.Lock()
	s.appError = code
	s.mu.Unlock()
	s.DropConnections()
}

// SetMethodError makes every call of method answer {"ok":false,"error":code};
// an empty code restores normal answers.
func (s *Server) SetMethodError(method, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == "" {
		delete(s.methodErrors, method)
		return
	}
	s.methodErrors[method] = code
}

// RateLimit makes the next n calls of method answer HTTP 429 with a
// Retry-After of retryAfter (whole seconds, as Slack sends it). A call that
// arrives before the previous 429's Retry-After has passed is counted by
// EarlyRetries.
func (s *Server) RateLimit(method string, retryAfter time.Duration, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits[method] = &rateLimit{n: n, retryAfter: retryAfter}
}

// EarlyRetries returns how many calls came in before a Retry-After the fake
// had answered had passed.
func (s *Server) EarlyRetries() int { return s.http.Stats.Get(statEarlyRetries) }

// SetPings makes the fake send websocket pings on every connection (the
// default) or stop, which makes a connection look dead to the bot.
func (s *Server) SetPings(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pings = on
}

// Requests returns every request the bot made as "METHOD PATH" (Web API
// calls and websocket upgrades), oldest first.
func (s *Server) Requests() []string { return s.http.Requests() }

// RequestCount returns how many requests the bot made: Web API calls and
// Socket Mode connections.
func (s *Server) RequestCount() int { return len(s.http.Requests()) }

// Calls returns how many times the Web API method was called.
func (s *Server) Calls(method string) int {
	n := 0
	for _, r := range s.http.Requests() {
		if r == "POST /api/"+method {
			n++
		}
	}
	return n
}

// Posted returns the messages the bot posted, oldest first.
func (s *Server) Posted() []PostedMessage { return s.posted.All() }

// record notes a Web API call and returns the error it must answer, if a
// test set one; a 429 is written here and reported as handled.
func (s *Server) record(w http.ResponseWriter, method string) (code string, handled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if l := s.limits[method]; l != nil {
		if now.Before(l.until) {
			s.http.Stats.Inc(statEarlyRetries)
		}
		if l.n > 0 {
			l.n--
			l.until = now.Add(l.retryAfter)
			w.Header().Set("Retry-After", strconv.Itoa(int(l.retryAfter/time.Second)))
			writeJSON(w, http.StatusTooManyRequests, map[string]any{"ok": false, "error": "ratelimited"})
			return "", true
		}
	}
	return s.methodErrors[method], false
}

// token returns the token a call carries: the Authorization bearer, or the
// form's token field (slack-go sends the bot token that way).
func token(r *http.Request) string {
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		return strings.TrimPrefix(h, "Bearer ")
	}
	return r.FormValue("token")
}

// checkToken returns the error Slack answers for tok where want is the kind
// of token the method takes ("bot" or "app"), or "" when it is accepted.
func (s *Server) checkToken(tok, want string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case tok == "":
		return "not_authed"
	case want == "bot" && tok == s.botToken:
		return s.botError
	case want == "app" && tok == s.appToken:
		return s.appError
	case tok == s.botToken || tok == s.appToken:
		return "not_allowed_token_type"
	}
	return "invalid_auth"
}

func (s *Server) handleAuthTest(w http.ResponseWriter, r *http.Request) {
	code, handled := s.record(w, "auth.test")
	if handled {
		return
	}
	if code == "" {
		code = s.checkToken(token(r), "bot")
	}
	if code != "" {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": code})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"ok": true, "url": "https://fake.slack.test/", "team": "Fake", "user": BotName,
		"team_id": TeamID, "user_id": BotUserID, "bot_id": BotID,
	})
}

func (s *Server) handleConnectionsOpen(w http.ResponseWriter, r *http.Request) {
	code, handled := s.record(w, "apps.connections.open")
	if handled {
		return
	}
	if code == "" {
		code = s.checkToken(token(r), "app")
	}
	if code != "" {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": code})
		return
	}
	s.mu.Lock()
	s.nextID++
	ticket := fmt.Sprintf("ticket-%d", s.nextID)
	s.tickets[ticket] = true
	s.mu.Unlock()
	wsURL := "ws" + strings.TrimPrefix(s.URL, "http") + "/link/?ticket=" + ticket + "&app_id=" + AppID
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "url": wsURL})
}

func (s *Server) handlePostMessage(w http.ResponseWriter, r *http.Request) {
	code, handled := s.record(w, "chat.postMessage")
	if handled {
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_form_data"})
		return
	}
	if code == "" {
		code = s.checkToken(token(r), "bot")
	}
	channel, text := r.PostForm.Get("channel"), r.PostForm.Get("text")
	switch {
	case code != "":
	case channel == "":
		code = "channel_not_found"
	case text == "":
		code = "no_text"
	case len([]rune(text)) > MaxTextLength:
		code = "msg_too_long"
	}
	if code != "" {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": code})
		return
	}
	s.mu.Lock()
	pm := PostedMessage{Channel: channel, ThreadTS: r.PostForm.Get("thread_ts"), Text: text, TS: s.newTS()}
	s.mu.Unlock()
	s.posted.Add(pm)
	writeJSON(w, http.StatusOK, map[string]any{
		"ok": true, "channel": channel, "ts": pm.TS,
		"message": map[string]any{"type": "message", "user": BotUserID, "bot_id": BotID, "text": text, "ts": pm.TS, "thread_ts": pm.ThreadTS},
	})
}

// newTS returns a fresh Slack message timestamp. Callers hold s.mu.
func (s *Server) newTS() string {
	s.nextTS++
	return fmt.Sprintf("%d.%06d", s.nextTS/1_000_000, s.nextTS%1_000_000)
}

// NewTS returns a fresh, unique Slack message timestamp for a test's
// message.
func (s *Server) NewTS() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newTS()
}

func writeJSON(w http.ResponseWriter, status int, v any) { fakekit.WriteJSON(w, status, v) }

// control adds the control API: POST /_fake/NAME with a JSON body runs the
// Go method of the same meaning.
func (s *Server) control() {
	inject := func(f func(Message) string) func(json.RawMessage) (any, error) {
		return func(in json.RawMessage) (any, error) {
			var m Message
			if err := json.Unmarshal(in, &m); err != nil {
				return nil, err
			}
			return f(m), nil
		}
	}
	str := func(f func(string)) func(json.RawMessage) (any, error) {
		return func(in json.RawMessage) (any, error) {
			var v string
			if err := json.Unmarshal(in, &v); err != nil {
				return nil, err
			}
			f(v)
			return nil, nil
		}
	}
	s.http.Control("message", inject(s.InjectMessage))
	s.http.Control("app_mention", inject(s.InjectAppMention))
	s.http.Control("event", func(in json.RawMessage) (any, error) {
		var ev map[string]any
		if err := json.Unmarshal(in, &ev); err != nil {
			return nil, err
		}
		return s.InjectEvent(ev), nil
	})
	s.http.Control("redeliver", str(s.Redeliver))
	s.http.Control("disconnect", str(s.Disconnect))
	s.http.Control("revoke_bot", str(s.RevokeBotToken))
	s.http.Control("revoke_app", str(s.RevokeAppToken))
	s.http.Control("drop", func(json.RawMessage) (any, error) {
		s.DropConnections()
		return nil, nil
	})
	s.http.Control("lose_acks", func(in json.RawMessage) (any, error) {
		var on bool
		if err := json.Unmarshal(in, &on); err != nil {
			return nil, err
		}
		s.LoseAcks(on)
		return nil, nil
	})
	s.http.Control("pings", func(in json.RawMessage) (any, error) {
		var on bool
		if err := json.Unmarshal(in, &on); err != nil {
			return nil, err
		}
		s.SetPings(on)
		return nil, nil
	})
	s.http.Control("method_error", func(in json.RawMessage) (any, error) {
		var v struct{ Method, Code string }
		if err := json.Unmarshal(in, &v); err != nil {
			return nil, err
		}
		s.SetMethodError(v.Method, v.Code)
		return nil, nil
	})
	s.http.Control("rate_limit", func(in json.RawMessage) (any, error) {
		var v struct {
			Method            string
			RetryAfterSeconds int `json:"retry_after_seconds"`
			N                 int
		}
		if err := json.Unmarshal(in, &v); err != nil {
			return nil, err
		}
		s.RateLimit(v.Method, time.Duration(v.RetryAfterSeconds)*time.Second, v.N)
		return nil, nil
	})
	s.http.Control("connections", func(json.RawMessage) (any, error) {
		return map[string]int{"open": s.OpenConnections(), "max_open": s.MaxOpenConnections(), "opened": s.Opened()}, nil
	})
}
