package fakediscord

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
)

// Gateway opcodes the fake speaks.
const (
	opDispatch       = 0
	opHeartbeat      = 1
	opIdentify       = 2
	opResume         = 6
	opReconnect      = 7
	opInvalidSession = 9
	opHello          = 10
	opHeartbeatACK   = 11
)

// CloseAuthenticationFailed is the close code Discord sends for a bad token.
const CloseAuthenticationFailed = 4004

// gwConn is one gateway websocket connection.
type gwConn struct {
	ws      *websocket.Conn
	writeMu sync.Mutex
	// session is set once IDENTIFY or RESUME succeeded; guarded by Server.mu.
	session *session
}

type payload struct {
	Op   int             `json:"op"`
	Data json.RawMessage `json:"d"`
	Seq  *int64          `json:"s,omitempty"`
	Type string          `json:"t,omitempty"`
}

func (c *gwConn) write(v any) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(2 * time.Second))
	return c.ws.WriteJSON(v)
}

// closeWith sends a close frame with code and then closes the connection.
func (c *gwConn) closeWith(code int, text string) {
	c.writeMu.Lock()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
	c.writeMu.Unlock()
	_ = c.ws.Close()
}

func (s *Server) serveGateway(w http.ResponseWriter, r *http.Request) {
	s.stats.Inc(statDials)
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
	c := &gwConn{ws: ws}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	silent, interval := s.silent, s.heartbeat
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = ws.Close()
	}()

	if !silent {
		hello := map[string]any{"heartbeat_interval": interval.Milliseconds()}
		if err := c.write(map[string]any{"op": opHello, "d": hello}); err != nil {
			return
		}
	}
	for {
		var p payload
		if err := ws.ReadJSON(&p); err != nil {
			return
		}
		if silent {
			continue
		}
		if !s.handlePayload(c, p) {
			return
		}
	}
}

// handlePayload answers one client payload; false ends the connection.
func (s *Server) handlePayload(c *gwConn, p payload) bool {
	switch p.Op {
	case opHeartbeat:
		s.stats.Inc(statHeartbeats)
		s.mu.Lock()
		ack := s.ackHeartbeats
		s.mu.Unlock()
		if ack {
			return c.write(map[string]any{"op": opHeartbeatACK}) == nil
		}
		return true
	case opIdentify:
		return s.identify(c, p.Data)
	case opResume:
		return s.resume(c, p.Data)
	default:
		return true
	}
}

func (s *Server) identify(c *gwConn, data json.RawMessage) bool {
	var id struct {
		Token   string `json:"token"`
		Intents int    `json:"intents"`
		Shard   []int  `json:"shard"`
	}
	_ = json.Unmarshal(data, &id)
	s.stats.Inc(statIdentifies)
	s.mu.Lock()
	valid := id.Token == "Bot "+s.token || id.Token == s.token
	closeCode := s.identifyClose
	s.mu.Unlock()
	if !valid {
		c.closeWith(CloseAuthenticationFailed, "Authentication failed.")
		return false
	}
	if closeCode != 0 {
		c.closeWith(closeCode, "closed by fakediscord")
		return false
	}
	if s.takeReconnectOnIdentify() {
		return c.reconnect(s)
	}
	s.mu.Lock()
	sess := &session{id: s.newID(), shard: 0, shards: 1}
	if len(id.Shard) == 2 && id.Shard[1] > 0 && id.Shard[0] >= 0 && id.Shard[0] < id.Shard[1] {
		sess.shard, sess.shards = id.Shard[0], id.Shard[1]
	}
	s.identified = append(s.identified, Identify{Shard: sess.shard, Shards: sess.shards, At: time.Now()})
	s.sessions[sess.id] = sess
	c.session = sess
	s.noteLiveLocked()
	sess.seq++
	seq := sess.seq
	s.mu.Unlock()
	ready := map[string]any{
		"v": 10, "session_id": sess.id, "resume_gateway_url": s.GatewayURL,
		"user": botUser(), "guilds": []any{}, "private_channels": []any{},
	}
	return c.write(dispatchPayload("READY", seq, ready)) == nil
}

func (s *Server) resume(c *gwConn, data json.RawMessage) bool {
	var rs struct {
		Token     string `json:"token"`
		SessionID string `json:"session_id"`
		Seq       int64  `json:"seq"`
	}
	_ = json.Unmarshal(data, &rs)
	s.stats.Inc(statResumes)
	s.mu.Lock()
	valid := rs.Token == "Bot "+s.token || rs.Token == s.token
	sess := s.sessions[rs.SessionID]
	s.mu.Unlock()
	if !valid {
		c.closeWith(CloseAuthenticationFailed, "Authentication failed.")
		return false
	}
	if sess == nil {
		return c.write(map[string]any{"op": opInvalidSession, "d": false}) == nil
	}
	// As Discord: every event dispatched to the session after the client's
	// seq is replayed (those it missed while disconnected, and those sent
	// to a connection that died before the client saw them), and another
	// connection still on the session is closed. Under s.mu, so that no
	// event dispatched meanwhile falls between the replay and the live feed.
	s.mu.Lock()
	for other := range s.conns {
		if other != c && other.session == sess {
			other.session = nil
			delete(s.conns, other)
			go func() { _ = other.ws.Close() }()
		}
	}
	for _, e := range sess.log {
		if e.seq <= rs.Seq {
			continue
		}
		if err := c.writeRaw(e.raw); err != nil {
			s.mu.Unlock()
			return false
		}
	}
	c.session = sess
	s.noteLiveLocked()
	sess.seq++
	seq := sess.seq
	storm := s.reconnectAfterResume
	s.mu.Unlock()
	if c.write(dispatchPayload("RESUMED", seq, map[string]any{})) != nil {
		return false
	}
	if storm {
		return c.reconnect(s)
	}
	return true
}

// reconnect sends op 7 (Reconnect) and keeps the connection open, as
// Discord does: the client is expected to close it and resume.
func (c *gwConn) reconnect(s *Server) bool {
	s.stats.Inc(statReconnects)
	return c.write(map[string]any{"op": opReconnect, "d": nil}) == nil
}

// takeReconnectOnIdentify reports whether this IDENTIFY is answered with
// op 7, counting it off.
func (s *Server) takeReconnectOnIdentify() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reconnectOnIdentify == 0 {
		return false
	}
	if s.reconnectOnIdentify > 0 {
		s.reconnectOnIdentify--
	}
	return true
}

// SetReconnectOnIdentify makes the gateway answer the next n IDENTIFYs
// (negative: every one) with op 7 (Reconnect) instead of READY, like a
// gateway node being drained before the session starts. Zero restores READY.
func (s *Server) SetReconnectOnIdentify(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reconnectOnIdentify = n
}

// SetReconnectAfterResume makes the gateway send op 7 (Reconnect) right
// after every RESUMED: a reconnect storm.
func (s *Server) SetReconnectAfterResume(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reconnectAfterResume = on
}

// RequestReconnect sends op 7 (Reconnect) to every live connection and
// returns how many got it.
func (s *Server) RequestReconnect() int {
	n := 0
	for _, c := range s.liveConns() {
		if c.reconnect(s) {
			n++
		}
	}
	return n
}

func (c *gwConn) writeRaw(raw []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(2 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, raw)
}

func dispatchPayload(event string, seq int64, data any) map[string]any {
	return map[string]any{"op": opDispatch, "t": event, "s": seq, "d": data}
}

// Dispatch sends a gateway event of type event with data to every session.
// A session whose connection is down gets it when it resumes, as Discord
// replays missed events. It returns the number of live connections that
// received it now.
func (s *Server) Dispatch(event string, data any) int {
	return s.dispatchTo(event, data, func(*session) bool { return true })
}

// dispatchTo is Dispatch to the sessions for which to is true.
func (s *Server) dispatchTo(event string, data any, to func(*session) bool) int {
	s.mu.Lock()
	type target struct {
		c   *gwConn
		raw []byte
	}
	var targets []target
	live := map[*session]bool{}
	for c := range s.conns {
		if c.session == nil || !to(c.session) || live[c.session] {
			continue
		}
		live[c.session] = true
		c.session.seq++
		raw, _ := json.Marshal(dispatchPayload(event, c.session.seq, data))
		c.session.record(c.session.seq, raw)
		targets = append(targets, target{c, raw})
	}
	for _, sess := range s.sessions {
		if !live[sess] && to(sess) {
			sess.seq++
			raw, _ := json.Marshal(dispatchPayload(event, sess.seq, data))
			sess.record(sess.seq, raw)
		}
	}
	s.mu.Unlock()
	n := 0
	for _, t := range targets {
		if t.c.writeRaw(t.raw) == nil {
			n++
		}
	}
	return n
}

// InjectMessage dispatches MESSAGE_CREATE for m, as if a user had written
// it. An empty m.ID or m.Timestamp is filled in. It returns the number of
// live connections that received it.
func (s *Server) InjectMessage(m *discordgo.Message) int {
	if m.ID == "" {
		s.mu.Lock()
		m.ID = s.newID()
		s.mu.Unlock()
	}
	if m.Timestamp.IsZero() {
		m.Timestamp = time.Now()
	}
	// As Discord shards: a guild's events go to shard (guild_id >> 22) %
	// shard_count, direct messages to shard 0.
	guild, _ := strconv.ParseUint(m.GuildID, 10, 64)
	return s.dispatchTo("MESSAGE_CREATE", m, func(sess *session) bool {
		return sess.shard == int((guild>>22)%uint64(sess.shards)) //nolint:gosec // shards ≥ 1
	})
}

// Identify is one IDENTIFY the gateway accepted.
type Identify struct {
	// Shard of Shards (0 of 1 when the bot did not shard).
	Shard, Shards int
	At            time.Time
}

// Identified returns the IDENTIFYs accepted so far, oldest first.
func (s *Server) Identified() []Identify {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Identify(nil), s.identified...)
}

// MaxLive returns the most gateway connections that were live (past READY
// or RESUMED) at the same moment, for tests of "one connection per shard".
func (s *Server) MaxLive() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxLive
}

// noteLiveLocked updates MaxLive; s.mu is held.
func (s *Server) noteLiveLocked() {
	n := 0
	for c := range s.conns {
		if c.session != nil {
			n++
		}
	}
	s.maxLive = max(s.maxLive, n)
}

// InvalidateSession sends op 9 (Invalid Session) to every live connection;
// resumable tells the bot whether it may resume.
func (s *Server) InvalidateSession(resumable bool) int {
	n := 0
	for _, c := range s.liveConns() {
		if !resumable {
			s.mu.Lock()
			if c.session != nil {
				delete(s.sessions, c.session.id)
			}
			s.mu.Unlock()
		}
		if c.write(map[string]any{"op": opInvalidSession, "d": resumable}) == nil {
			n++
		}
	}
	return n
}

// CloseWith closes every gateway connection with a close frame carrying
// code and text, as Discord does for 4004 (token rejected) or 4014
// (disallowed intents). It returns the number of connections closed.
func (s *Server) CloseWith(code int, text string) int {
	conns := s.takeConns()
	for _, c := range conns {
		c.closeWith(code, text)
	}
	return len(conns)
}

// Drop cuts every gateway connection without a close frame, like a network
// failure. Sessions stay resumable. It returns the number of connections cut.
func (s *Server) Drop() int {
	conns := s.takeConns()
	for _, c := range conns {
		_ = c.ws.Close()
	}
	return len(conns)
}

func (s *Server) liveConns() []*gwConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*gwConn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// takeConns detaches every connection from the server, so that events
// dispatched from now on are queued for resumption instead of being written
// to a connection that is going away.
func (s *Server) takeConns() []*gwConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*gwConn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
		c.session = nil
		delete(s.conns, c)
	}
	return out
}
