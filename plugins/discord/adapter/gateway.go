package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"

	"github.com/plughost/gateway/shared"
)

// The gateway connection is ours, not discordgo's. discordgo v0.29.0's
// Session.Open/listen cannot meet the plugin's contract: the read loop logs
// the close frame and throws the code away (so 4004 and 4014 are
// indistinguishable from a network blip), it re-identifies on its own after
// op 9 (bypassing identify_budget), Open reads without a deadline, and every
// Close sleeps a second holding the session lock. So this file speaks the
// gateway protocol with gorilla/websocket (which discordgo uses too) and
// discordgo's types, and discordgo does REST, rate limits and JSON models.

// Gateway opcodes, https://discord.com/developers/docs/topics/opcodes-and-status-codes.
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

// intents are what the bot subscribes to. Message Content is privileged:
// without it guild message text arrives empty, and if the application has
// not enabled it Discord closes with 4014.
const intents = discordgo.IntentGuilds | discordgo.IntentGuildMessages |
	discordgo.IntentDirectMessages | discordgo.IntentMessageContent

// maxPayload bounds one gateway message (GUILD_CREATE of a big guild is
// large, but not this large).
const maxPayload = 16 << 20

var (
	errReconnectRequested = errors.New("the gateway asked the bot to reconnect (op 7)")
	errStale              = errors.New("no heartbeat ACK from the gateway: connection is stale")
)

// invalidSessionError is op 9: the session is gone; Resumable says whether
// a RESUME may still work.
type invalidSessionError struct{ Resumable bool }

func (e *invalidSessionError) Error() string {
	return fmt.Sprintf("Discord invalidated the gateway session (op 9, resumable=%v)", e.Resumable)
}

// resumeState is what outlives one connection: enough to resume.
type resumeState struct {
	sessionID string
	resumeURL string
	seq       atomic.Int64 // written by the read loop, read by heartbeats
}

func (r *resumeState) canResume() bool { return r.sessionID != "" }

func (r *resumeState) reset() {
	r.sessionID, r.resumeURL = "", ""
	r.seq.Store(0)
}

type gatewayPayload struct {
	Op   int             `json:"op"`
	Data json.RawMessage `json:"d"`
	Seq  int64           `json:"s"`
	Type string          `json:"t"`
}

type identifyData struct {
	Token      string             `json:"token"`
	Intents    discordgo.Intent   `json:"intents"`
	Properties identifyProperties `json:"properties"`
	// Shard is [shard, shard_count] when the platform has several shards.
	Shard *[2]int `json:"shard,omitempty"`
}

type identifyProperties struct {
	OS      string `json:"os"`
	Browser string `json:"browser"`
	Device  string `json:"device"`
}

type resumeData struct {
	Token     string `json:"token"`
	SessionID string `json:"session_id"`
	Seq       int64  `json:"seq"`
}

type readyData struct {
	SessionID        string          `json:"session_id"`
	ResumeGatewayURL string          `json:"resume_gateway_url"`
	User             *discordgo.User `json:"user"`
}

// conn is one gateway websocket connection.
type conn struct {
	ws      *websocket.Conn
	rs      *resumeState
	writeMu sync.Mutex
	acked   atomic.Bool // a heartbeat ACK arrived since the last heartbeat
	stale   atomic.Bool // the heartbeat loop gave up on the connection
	timeout time.Duration
}

// emitFunc hands an event to Run's channel; false means Run is ending.
type emitFunc func(shared.Event) bool

// connect runs one gateway connection, from dial to its end, and returns
// why it ended and whether it got as far as READY or RESUMED. Every step
// before READY is bounded by the open timeout, so a gateway that accepts
// and then says nothing cannot hang the plugin; after READY, liveness is
// checked by heartbeat ACKs.
func (a *Adapter) connect(ctx context.Context, rs *resumeState, dialURL string, emit emitFunc) (ready bool, err error) {
	timeout := a.tune.openTimeout
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dialer := websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: timeout}
	ws, resp, err := dialer.DialContext(dctx, dialURL, nil)
	status := ""
	if resp != nil {
		status = " (HTTP " + resp.Status + ")"
		if resp.Body != nil {
			_ = resp.Body.Close()
		}
	}
	if err != nil {
		return false, fmt.Errorf("dialing the Discord gateway%s: %w", status, err)
	}
	ws.SetReadLimit(maxPayload)
	c := &conn{ws: ws, rs: rs, timeout: timeout}
	c.acked.Store(true)
	defer func() { _ = ws.Close() }()
	// Closing the socket is the only way to end a blocked read: do it as
	// soon as Run is cancelled, with a 1000 close so Discord ends the
	// session and the bot shows offline at once.
	closed := make(chan struct{})
	stopWatch := context.AfterFunc(ctx, func() {
		defer close(closed)
		c.closeNormal()
	})
	defer func() {
		if !stopWatch() {
			<-closed // it started: let it finish before Run can return
		}
	}()

	_ = ws.SetReadDeadline(time.Now().Add(timeout))
	hello, err := c.read()
	if err != nil {
		return false, c.endReason(ctx, "waiting for HELLO", err)
	}
	if hello.Op != opHello {
		return false, fmt.Errorf("expected HELLO (op 10) from the Discord gateway, got op %d", hello.Op)
	}
	var h struct {
		HeartbeatInterval float64 `json:"heartbeat_interval"`
	}
	if err := json.Unmarshal(hello.Data, &h); err != nil || h.HeartbeatInterval <= 0 {
		return false, fmt.Errorf("bad HELLO from the Discord gateway: %q", hello.Data)
	}
	interval := time.Duration(h.HeartbeatInterval * float64(time.Millisecond))

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { c.heartbeatLoop(interval, done) })
	defer wg.Wait()
	defer close(done)

	if err := a.identifyOrResume(c); err != nil {
		return false, err
	}
	openDeadline := time.Now().Add(timeout)
	for {
		deadline := openDeadline
		if ready {
			deadline = time.Now().Add(2*interval + timeout)
		}
		_ = ws.SetReadDeadline(deadline)
		p, err := c.read()
		if err != nil {
			return ready, c.endReason(ctx, "reading from the gateway", err)
		}
		switch p.Op {
		case opHeartbeatACK:
			c.acked.Store(true)
		case opHeartbeat:
			if err := c.sendHeartbeat(); err != nil {
				return ready, c.endReason(ctx, "answering a heartbeat request", err)
			}
		case opReconnect:
			return ready, errReconnectRequested
		case opInvalidSession:
			var resumable bool
			_ = json.Unmarshal(p.Data, &resumable)
			return ready, &invalidSessionError{Resumable: resumable}
		case opDispatch:
			if p.Seq > 0 {
				rs.seq.Store(p.Seq)
			}
			switch p.Type {
			case "READY", "RESUMED":
				if p.Type == "READY" {
					a.onReady(rs, p.Data)
				}
				ready = true
				a.log.Info("connected to the Discord gateway", "event", p.Type)
				if !emit(shared.Event{Health: &shared.Health{State: shared.Connected, Message: "connected to Discord (" + p.Type + ")"}}) {
					return ready, ctx.Err()
				}
			default:
				if !a.dispatch(p.Type, p.Data, cursorAt(rs, p.Seq), emit) {
					return ready, ctx.Err()
				}
			}
		}
	}
}

// identifyOrResume sends RESUME when there is a session, IDENTIFY (counted
// against identify_budget) otherwise.
func (a *Adapter) identifyOrResume(c *conn) error {
	token := "Bot " + a.cfg.token
	if c.rs.canResume() {
		a.log.Debug("resuming gateway session", "seq", c.rs.seq.Load())
		return c.write(map[string]any{"op": opResume, "d": resumeData{
			Token: token, SessionID: c.rs.sessionID, Seq: c.rs.seq.Load(),
		}})
	}
	if err := a.budget.take(time.Now()); err != nil {
		return err
	}
	a.log.Info("identifying to the Discord gateway", "identifies_this_hour", a.budget.used(time.Now()),
		"shard", a.cfg.shard, "shard_count", a.cfg.shardCount)
	id := identifyData{
		Token:      token,
		Intents:    intents,
		Properties: identifyProperties{OS: runtime.GOOS, Browser: "plughost-gateway", Device: "plughost-gateway"},
	}
	if a.cfg.shardCount > 1 {
		id.Shard = &[2]int{a.cfg.shard, a.cfg.shardCount}
	}
	return c.write(map[string]any{"op": opIdentify, "d": id})
}

func (a *Adapter) onReady(rs *resumeState, data json.RawMessage) {
	var r readyData
	if err := json.Unmarshal(data, &r); err != nil {
		a.log.Warn("cannot decode READY", "error", err)
		return
	}
	rs.sessionID, rs.resumeURL = r.SessionID, r.ResumeGatewayURL
	if r.User != nil {
		a.setBot(r.User)
	}
}

// dispatch handles one gateway event; false means Run is ending. cur is
// the cursor after the event.
func (a *Adapter) dispatch(event string, data json.RawMessage, cur string, emit emitFunc) bool {
	switch event {
	case "MESSAGE_CREATE":
		var m discordgo.Message
		if err := json.Unmarshal(data, &m); err != nil {
			a.log.Warn("cannot decode MESSAGE_CREATE", "error", err)
			return true
		}
		msg := inbound(a.cfg, a.botID(), &a.threads, &m)
		if msg == nil {
			return true
		}
		if err := msg.CheckIDs(); err != nil {
			// Discord's ids are short snowflakes; anything else is not
			// Discord, and the host would refuse it anyway.
			a.log.Warn("dropped a message whose ids are unusable", "message_id", shared.LogValue(msg.ID), "reason", err)
			return true
		}
		a.log.Debug("message received", "channel", msg.ConversationID, "user", msg.UserID, "message_id", msg.ID)
		msg.Cursor = cur
		return emit(shared.Event{Message: msg})
	case "GUILD_CREATE":
		var g discordgo.Guild
		if json.Unmarshal(data, &g) == nil {
			a.threads.add(g.Threads...)
		}
	case "THREAD_CREATE", "THREAD_UPDATE":
		var ch discordgo.Channel
		if json.Unmarshal(data, &ch) == nil {
			a.threads.add(&ch)
		}
	case "THREAD_DELETE":
		var ch discordgo.Channel
		if json.Unmarshal(data, &ch) == nil {
			a.threads.remove(ch.ID)
		}
	case "THREAD_LIST_SYNC":
		var ts discordgo.ThreadListSync
		if json.Unmarshal(data, &ts) == nil {
			a.threads.add(ts.Threads...)
		}
	}
	return true
}

// heartbeatLoop beats every interval (the first one after a random part of
// it, as Discord asks) and tears the connection down when the previous beat
// was not acknowledged: that is how a connection that silently stopped
// receiving is noticed and replaced.
func (c *conn) heartbeatLoop(interval time.Duration, done <-chan struct{}) {
	t := time.NewTimer(rand.N(interval) + 1)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		if !c.acked.Swap(false) {
			c.stale.Store(true)
			_ = c.ws.Close()
			return
		}
		if err := c.sendHeartbeat(); err != nil {
			_ = c.ws.Close()
			return
		}
		t.Reset(interval)
	}
}

func (c *conn) sendHeartbeat() error {
	var seq any
	if s := c.rs.seq.Load(); s > 0 {
		seq = s
	}
	return c.write(map[string]any{"op": opHeartbeat, "d": seq})
}

func (c *conn) write(v any) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.timeout))
	if err := c.ws.WriteJSON(v); err != nil {
		return fmt.Errorf("writing to the Discord gateway: %w", err)
	}
	return nil
}

func (c *conn) read() (gatewayPayload, error) {
	_, data, err := c.ws.ReadMessage()
	if err != nil {
		return gatewayPayload{}, err
	}
	return decodePayload(data)
}

// decodePayload decodes one gateway frame.
func decodePayload(data []byte) (gatewayPayload, error) {
	var p gatewayPayload
	if err := json.Unmarshal(data, &p); err != nil {
		return p, fmt.Errorf("decoding a gateway payload: %w", err)
	}
	return p, nil
}

// closeNormal says goodbye with close code 1000 and drops the connection.
func (c *conn) closeNormal() {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(250*time.Millisecond))
	_ = c.ws.Close()
}

// endReason explains why a read failed: Run ending, a stale connection, or
// the gateway's own reason (a *websocket.CloseError stays reachable with
// errors.As for close-code classification).
func (c *conn) endReason(ctx context.Context, doing string, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case c.stale.Load():
		return errStale
	}
	return fmt.Errorf("%s: %w", doing, err)
}
