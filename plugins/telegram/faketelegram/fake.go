// Package faketelegram is a fake Telegram Bot API for tests: a loopback HTTP
// server that answers /bot{token}/{method} like api.telegram.org for the
// methods a polling bot uses (getMe, getUpdates with offset and long-poll
// timeout, sendMessage, sendChatAction, deleteWebhook, getWebhookInfo).
// Tests steer it through its methods (inject updates, revoke the token,
// force 409, 429 and 5xx answers, set a webhook) and read back what the bot
// did (posted messages, chat actions, requests per method, the confirmed
// offset).
//
// Point a bot at it with api_url = Server.URL.
package faketelegram

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/go-telegram/bot/models"

	"github.com/plughost/gateway/shared/kit/fakekit"
)

// DefaultToken is the bot token the fake accepts until SetToken changes it.
const DefaultToken = "1000001:AAF-fake-token-for-tests-0123456789ab"

// The fake bot's identity, answered by getMe.
const (
	BotID       int64 = 1000001
	BotUsername       = "gateway_test_bot"
)

// Descriptions Telegram gives with a 409.
const (
	ConflictPoller  = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
	ConflictWebhook = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)

// maxPoll bounds a long poll whatever timeout the client asks for, as
// Telegram does (50 s).
const maxPoll = 50 * time.Second

// Posted is a message the bot sent with sendMessage.
type Posted struct {
	// MessageID is the id the fake gave the message in its chat.
	MessageID int
	ChatID    int64
	// ThreadID is message_thread_id, 0 when absent.
	ThreadID int
	Text     string
	// ReplyTo is reply_parameters.message_id, 0 when not a reply.
	ReplyTo int
	// ParseMode is parse_mode as sent, "" for plain text.
	ParseMode string
}

// Action is a chat action the bot sent with sendChatAction.
type Action struct {
	ChatID   int64
	ThreadID int
	Action   string
}

// Request is one HTTP request the fake received.
type Request struct {
	Method string
	// TokenOK says whether the request carried the accepted token.
	TokenOK bool
	// Offset and Timeout are getUpdates' parameters (0 when absent).
	Offset  int64
	Timeout int
	At      time.Time
}

// Failure makes calls of Method answer Status (with RetryAfter seconds for
// a 429) instead of working, Times times (0: until cleared). ChatID, when
// set, limits it to calls for that chat.
type Failure struct {
	Method      string
	ChatID      int64
	Status      int
	Description string
	RetryAfter  int
	Times       int
}

// Server is a running fake Telegram Bot API. Its methods are safe for
// concurrent use. Tests in the same process call its methods; its control
// API (fakekit: POST {URL}/_fake/NAME) drives it from outside.
type Server struct {
	// URL is the base to configure as api_url, http://127.0.0.1:PORT.
	URL string

	http    *fakekit.Server
	calls   *fakekit.Log[Request]
	posted  *fakekit.Log[Posted]
	actions *fakekit.Log[Action]

	mu        sync.Mutex
	token     string
	webhook   string
	conflict  bool
	holdPolls bool
	nextID    int64                      // next update_id
	pending   []*models.Update           // updates not yet confirmed, oldest first
	confirmed int64                      // every update_id below this is confirmed
	chats     map[int64][]int            // message ids seen per chat, for reply checks
	nextMsg   map[int64]int              // next message_id per chat
	failures  []*Failure                 // forced answers, checked in order
	changed   chan struct{}              // closed and replaced whenever polls should look again
	polls     map[chan struct{}]struct{} // getUpdates calls waiting; closing one ends it with a 409
	closed    bool
	done      chan struct{} // closed by Close
}

// New starts a fake Telegram on 127.0.0.1 and stops it when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	srv := fakekit.NewServer(t)
	s := &Server{
		URL:     srv.URL,
		http:    srv,
		calls:   fakekit.NewLog[Request](srv, "calls"),
		posted:  fakekit.NewLog[Posted](srv, "posted"),
		actions: fakekit.NewLog[Action](srv, "actions"),
		token:   DefaultToken,
		nextID:  500000001,
		chats:   map[int64][]int{},
		nextMsg: map[int64]int{},
		changed: make(chan struct{}),
		polls:   map[chan struct{}]struct{}{},
		done:    make(chan struct{}),
	}
	srv.HandleFunc("/", s.serve)
	s.control()
	// Runs before fakekit's own cleanup: long polls end, then the server.
	t.Cleanup(s.Close)
	return s
}

// Close ends every waiting poll and stops the server. It is called
// automatically at the end of the test that created the server.
func (s *Server) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
		s.wakeLocked()
	}
	s.mu.Unlock()
	s.http.Close()
}

// control adds the control API: POST /_fake/NAME with a JSON body.
func (s *Server) control() {
	s.http.Control("message", func(in json.RawMessage) (any, error) {
		var m models.Message
		if err := json.Unmarshal(in, &m); err != nil {
			return nil, err
		}
		return s.Inject(&m), nil
	})
	s.http.Control("token", func(in json.RawMessage) (any, error) {
		var token string
		err := json.Unmarshal(in, &token)
		if err == nil {
			s.SetToken(token)
		}
		return nil, err
	})
	s.http.Control("conflict", func(in json.RawMessage) (any, error) {
		var on bool
		err := json.Unmarshal(in, &on)
		if err == nil {
			s.SetConflict(on)
		}
		return nil, err
	})
	s.http.Control("webhook", func(in json.RawMessage) (any, error) {
		var url string
		err := json.Unmarshal(in, &url)
		if err == nil {
			s.SetWebhook(url)
		}
		return nil, err
	})
	s.http.Control("hold", func(in json.RawMessage) (any, error) {
		var on bool
		err := json.Unmarshal(in, &on)
		if err == nil {
			s.HoldPolls(on)
		}
		return nil, err
	})
	s.http.Control("fail", func(in json.RawMessage) (any, error) {
		var f Failure
		err := json.Unmarshal(in, &f)
		if err == nil {
			s.Fail(f)
		}
		return nil, err
	})
	s.http.Control("clear_failures", func(json.RawMessage) (any, error) { s.ClearFailures(); return nil, nil })
	s.http.Control("confirmed", func(json.RawMessage) (any, error) { return s.Confirmed(), nil })
}

// wakeLocked makes every waiting getUpdates look at the state again.
// Callers hold s.mu.
func (s *Server) wakeLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// SetToken changes the token the fake accepts. Changing it while a bot
// polls is how a test revokes the token: waiting polls end as if their
// timeout passed, and every later call answers 401.
func (s *Server) SetToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
	s.wakeLocked()
}

// SetConflict makes getUpdates answer 409 (another poller) while on;
// waiting polls end with it at once.
func (s *Server) SetConflict(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conflict = on
	s.wakeLocked()
}

// SetWebhook sets (or, with "", removes) a webhook, as another deployment
// would with setWebhook: getUpdates answers 409 until deleteWebhook.
func (s *Server) SetWebhook(url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhook = url
	s.wakeLocked()
}

// Webhook returns the webhook URL set, "" for none.
func (s *Server) Webhook() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.webhook
}

// HoldPolls makes getUpdates calls that arrive while it is on hang until the
// client goes away, never applying their offset: requests lost on the way,
// so a bot killed meanwhile has confirmed nothing since its last poll. Calls
// already waiting go on as before.
func (s *Server) HoldPolls(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holdPolls = on
}

// Fail adds a forced answer (see Failure).
func (s *Server) Fail(f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := f
	s.failures = append(s.failures, &c)
	s.wakeLocked()
}

// ClearFailures removes every forced answer.
func (s *Server) ClearFailures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = nil
	s.wakeLocked()
}

// Inject queues an update carrying m for the bot, giving it an update_id
// (returned), a message_id when m has none and a date when m has none. It
// wakes a waiting getUpdates.
func (s *Server) Inject(m *models.Message) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.ID == 0 {
		m.ID = s.newMessageIDLocked(m.Chat.ID)
	}
	if m.Date == 0 {
		m.Date = int(time.Now().Unix())
	}
	if m.Entities == nil {
		m.Entities = entities(m.Text)
	}
	s.chats[m.Chat.ID] = append(s.chats[m.Chat.ID], m.ID)
	u := &models.Update{ID: s.nextID, Message: m}
	s.nextID++
	s.pending = append(s.pending, u)
	s.wakeLocked()
	return u.ID
}

func (s *Server) newMessageIDLocked(chat int64) int {
	if s.nextMsg[chat] == 0 {
		s.nextMsg[chat] = 1
	}
	id := s.nextMsg[chat]
	s.nextMsg[chat]++
	return id
}

// Pending returns how many updates the bot has not confirmed yet.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// Confirmed returns the offset the bot last confirmed: every update_id below
// it is gone.
func (s *Server) Confirmed() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.confirmed
}

// Posted returns the messages the bot sent, oldest first.
func (s *Server) Posted() []Posted { return s.posted.All() }

// Actions returns the chat actions the bot sent, oldest first.
func (s *Server) Actions() []Action { return s.actions.All() }

// Requests returns every Bot API request received, oldest first.
func (s *Server) Requests() []Request { return s.calls.All() }

// Count returns how many requests called method ("" counts all).
func (s *Server) Count(method string) int {
	if method == "" {
		return s.http.Stats.Get(statRequests)
	}
	return s.http.Stats.Get(method)
}

// statRequests counts every Bot API request; each method has its own
// counter under its name (GET /_fake/stats).
const statRequests = "requests"

// Polling returns how many getUpdates calls are waiting right now.
func (s *Server) Polling() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.polls)
}
