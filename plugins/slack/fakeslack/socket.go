package fakeslack

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// openGrace is how long after a connection opens the fake counts how many
// are open at once (see MaxOpenConnections).
const openGrace = 300 * time.Millisecond

// sockConn is one Socket Mode websocket connection.
type sockConn struct {
	ws      *websocket.Conn
	writeMu sync.Mutex
	done    chan struct{}
	counted chan struct{} // closed once the connection was counted (or closed)
}

// envelope is one events_api delivery Slack keeps until it is acknowledged.
type envelope struct {
	id      string
	payload json.RawMessage
	retry   int
	acked   bool
	sentOn  *sockConn
}

// Message is a message event for a test to inject. Empty fields get
// defaults: TS a fresh timestamp, ChannelType "channel".
type Message struct {
	Channel     string
	ChannelType string // "im", "channel", "group" or "mpim"
	User        string
	Text        string
	TS          string
	ThreadTS    string
	BotID       string
	SubType     string
}

func (c *sockConn) write(v any) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(2 * time.Second))
	return c.ws.WriteJSON(v)
}

func (c *sockConn) ping() error {
	return c.ws.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second))
}

func (s *Server) serveSocket(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ticket := r.URL.Query().Get("ticket")
	valid := s.tickets[ticket]
	delete(s.tickets, ticket)
	s.mu.Unlock()
	if !valid {
		http.Error(w, "invalid or used ticket", http.StatusUnauthorized)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	release, ok := s.http.Hold(ws)
	defer release()
	if !ok {
		_ = ws.Close()
		return
	}
	c := &sockConn{ws: ws, done: make(chan struct{}), counted: make(chan struct{})}
	// Hello comes first, and the connection counts as open (for events
	// and for tests) from the moment it is sent: s.mu is held across both.
	s.mu.Lock()
	s.http.Stats.Inc(statOpened)
	hello := map[string]any{
		"type": "hello", "num_connections": len(s.conns) + 1,
		"debug_info":      map[string]any{"host": "fake-applink", "build_number": 1, "approximate_connection_time": 18060},
		"connection_info": map[string]any{"app_id": AppID},
	}
	if err := c.write(hello); err != nil {
		s.mu.Unlock()
		_ = ws.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.maxOpen = max(s.maxOpen, 1)
	s.mu.Unlock()
	defer s.forget(c)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(c.done)
	wg.Go(func() { s.pingLoop(c) })
	// A client that closed its old connection just before opening this
	// one may not have been noticed yet (its handler has yet to read the
	// close): count what is still open a moment later. A stale connection
	// stays open; a closed one is gone by then.
	wg.Go(func() {
		defer close(c.counted)
		t := time.NewTimer(openGrace)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.done:
			return // closed already: nothing to count
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.maxOpen = max(s.maxOpen, len(s.conns))
	})
	s.flushQueue()
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var ack struct {
			EnvelopeID string `json:"envelope_id"`
		}
		if json.Unmarshal(data, &ack) != nil || ack.EnvelopeID == "" {
			continue
		}
		s.mu.Lock()
		lost := s.loseAcks
		if e := s.envelopes[ack.EnvelopeID]; e != nil && !lost {
			e.acked = true
		}
		s.mu.Unlock()
		if lost {
			s.http.Stats.Inc(statLostAcks)
			continue
		}
		s.acks.Add(ack.EnvelopeID)
	}
}

// forget removes a closed connection; what it was sent and did not
// acknowledge is delivered again, with retry_attempt raised, on a
// connection that is still open or the next one to open.
func (s *Server) forget(c *sockConn) {
	_ = c.ws.Close()
	s.mu.Lock()
	delete(s.conns, c)
	var again []*envelope
	for _, e := range s.envelopes {
		if e.sentOn == c && !e.acked {
			e.sentOn = nil
			e.retry++
			again = append(again, e)
		}
	}
	s.queue = append(s.queue, again...)
	s.mu.Unlock()
	s.flushQueue()
}

func (s *Server) pingLoop(c *sockConn) {
	s.mu.Lock()
	interval := s.pingInterval
	s.mu.Unlock()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		s.mu.Lock()
		on := s.pings
		s.mu.Unlock()
		if on && c.ping() != nil {
			return
		}
	}
}

// InjectMessage delivers a message event in an events_api envelope and
// returns the envelope id.
func (s *Server) InjectMessage(m Message) string {
	return s.InjectEvent(messageEvent("message", m))
}

// InjectAppMention delivers an app_mention event (Slack sends one, besides
// the message event, for a channel message that mentions the bot) and
// returns the envelope id.
func (s *Server) InjectAppMention(m Message) string {
	ev := messageEvent("app_mention", m)
	delete(ev, "channel_type") // app_mention has none
	return s.InjectEvent(ev)
}

func messageEvent(typ string, m Message) map[string]any {
	if m.ChannelType == "" {
		m.ChannelType = "channel"
	}
	ev := map[string]any{
		"type": typ, "channel": m.Channel, "channel_type": m.ChannelType, "user": m.User,
		"text": m.Text, "ts": m.TS, "event_ts": m.TS,
	}
	for k, v := range map[string]string{"thread_ts": m.ThreadTS, "bot_id": m.BotID, "subtype": m.SubType} {
		if v != "" {
			ev[k] = v
		}
	}
	if m.User == "" {
		delete(ev, "user")
	}
	return ev
}

// InjectEvent delivers an Events API inner event (the "event" object of an
// event_callback) in an events_api envelope on one open connection, taking
// turns between them as Slack does, or on the next connection to open. A
// message event without a ts gets a fresh one. It returns the envelope id.
func (s *Server) InjectEvent(event map[string]any) string {
	s.mu.Lock()
	if ts, _ := event["ts"].(string); ts == "" && (event["type"] == "message" || event["type"] == "app_mention") {
		ts = s.newTS()
		event["ts"], event["event_ts"] = ts, ts
	}
	s.nextID++
	n := s.nextID
	payload, err := json.Marshal(map[string]any{
		"token": "fake-verification-token", "team_id": TeamID, "api_app_id": AppID,
		"event": event, "type": "event_callback", "event_id": fmt.Sprintf("Ev%08d", n),
		"event_time":     time.Now().Unix(),
		"authorizations": []map[string]any{{"team_id": TeamID, "user_id": BotUserID, "is_bot": true}},
	})
	if err != nil {
		s.mu.Unlock()
		panic(fmt.Sprintf("fakeslack: event does not marshal: %v", err))
	}
	e := &envelope{id: "env-" + strconv.Itoa(n), payload: payload}
	s.envelopes[e.id] = e
	s.queue = append(s.queue, e)
	s.mu.Unlock()
	s.flushQueue()
	return e.id
}

// LoseAcks makes acknowledgements that arrive while it is on get lost on
// the way, as when a bot dies just as it writes one: Slack never sees them,
// and delivers the envelope again (retry_attempt raised) once the
// connection it was sent on closes. LostAcks counts them.
func (s *Server) LoseAcks(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loseAcks = on
}

// RetryAttempt is the retry_attempt of the envelope's latest delivery: how
// often it was delivered again.
func (s *Server) RetryAttempt(envelopeID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.envelopes[envelopeID]; e != nil {
		return e.retry
	}
	return 0
}

// LostAcks is how many acknowledgements LoseAcks dropped.
func (s *Server) LostAcks() int { return s.http.Stats.Get(statLostAcks) }

// Redeliver sends an envelope again with retry_attempt raised, acknowledged
// or not, as Slack does when an acknowledgement did not reach it in time.
func (s *Server) Redeliver(envelopeID string) {
	s.mu.Lock()
	e := s.envelopes[envelopeID]
	if e == nil {
		s.mu.Unlock()
		panic("fakeslack: no envelope " + envelopeID)
	}
	e.retry++
	e.acked, e.sentOn = false, nil
	s.http.Stats.Inc(statRedelivered)
	s.queue = append(s.queue, e)
	s.mu.Unlock()
	s.flushQueue()
}

// flushQueue sends queued envelopes round-robin over the open connections.
func (s *Server) flushQueue() {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 || len(s.conns) == 0 {
			s.mu.Unlock()
			return
		}
		conns := make([]*sockConn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.rr++
		c := conns[s.rr%len(conns)]
		e := s.queue[0]
		s.queue = s.queue[1:]
		e.sentOn = c
		msg := map[string]any{
			"envelope_id": e.id, "payload": e.payload, "type": "events_api",
			"accepts_response_payload": false, "retry_attempt": e.retry, "retry_reason": "",
		}
		if e.retry > 0 {
			msg["retry_reason"] = "timeout"
		}
		s.mu.Unlock()
		if err := c.write(msg); err != nil {
			// The connection is going; forget (on its handler) will queue
			// the envelope again.
			return
		}
	}
}

// Acked reports whether the bot acknowledged the envelope's latest delivery.
func (s *Server) Acked(envelopeID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.envelopes[envelopeID]
	return e != nil && e.acked
}

// Acks returns the envelope ids the bot acknowledged, oldest first, one per
// acknowledgement.
func (s *Server) Acks() []string { return s.acks.All() }

// Disconnect sends a disconnect message with reason ("warning",
// "refresh_requested", "link_disabled") on every open connection, and
// leaves it to the bot to close them.
func (s *Server) Disconnect(reason string) {
	for _, c := range s.openConns() {
		_ = c.write(map[string]any{"type": "disconnect", "reason": reason,
			"debug_info": map[string]any{"host": "fake-applink"}})
	}
}

// DropConnections closes every open Socket Mode connection without a word,
// like a network failure.
func (s *Server) DropConnections() {
	for _, c := range s.openConns() {
		_ = c.ws.Close()
	}
}

func (s *Server) openConns() []*sockConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*sockConn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// OpenConnections returns how many Socket Mode connections are open now.
func (s *Server) OpenConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// MaxOpenConnections returns the most Socket Mode connections that were
// open at the same time, counted 300ms after each connection opened (so an
// old connection the bot closed just before is not counted while its close
// is still in flight). Slack spreads events over every open connection, so
// a bot that leaves an old one open loses events: this should stay 1.
//
// It waits (at most that 300ms) until the connections open now are counted.
func (s *Server) MaxOpenConnections() int {
	for _, c := range s.openConns() {
		<-c.counted
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxOpen
}

// Opened returns how many Socket Mode connections were opened in total.
func (s *Server) Opened() int { return s.http.Stats.Get(statOpened) }
