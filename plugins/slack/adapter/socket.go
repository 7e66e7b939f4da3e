package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// The Socket Mode connection is ours; its wire types are socketmode's.
// socketmode.Client.Run cannot meet the plugin's contract: its connect
// step retries token_expired, not_allowed_token_type and the like for
// minutes, and reports them on its Events channel only after it has
// scheduled the next attempt (so a rejected token costs more than the one
// request), it acks through a queue shared by successive connections, and
// its backoff is its own. So this file speaks the protocol with
// gorilla/websocket (which socketmode uses too), socketmode.Request and
// socketmode.Response, and slackevents parses what arrives.

// maxPayload bounds one Socket Mode message.
const maxPayload = 4 << 20

// writeBufferSize keeps an ack in a single frame: Slack does not reassemble
// continuation frames (socketmode uses the same size).
const writeBufferSize = 32 << 10

// errRefresh means Slack asked for this connection to be replaced (a
// disconnect message): reconnect at once.
var errRefresh = errors.New("Slack asked for a new connection")

// conn is one Socket Mode websocket connection. Only the read loop writes
// messages (acks); pongs and the closing frame are control frames, which
// gorilla/websocket lets other goroutines write.
type conn struct {
	ws      *websocket.Conn
	timeout time.Duration
}

// connect runs one Socket Mode connection, from dial to its end, and
// returns why it ended. The connection is closed when connect returns, so
// the next one never overlaps it.
func (a *Adapter) connect(ctx context.Context, wsURL string, events chan<- shared.Event) error {
	timeout := a.tune.openTimeout
	dctx, cancel := context.WithTimeout(ctx, timeout)
	dialer := websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: timeout, WriteBufferSize: writeBufferSize}
	ws, resp, err := dialer.DialContext(dctx, wsURL, nil)
	cancel()
	status := ""
	if resp != nil {
		status = " (HTTP " + resp.Status + ")"
		if resp.Body != nil {
			_ = resp.Body.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("dialing the Socket Mode websocket%s: %w", status, err)
	}
	ws.SetReadLimit(maxPayload)
	c := &conn{ws: ws, timeout: timeout}
	defer func() { _ = ws.Close() }()
	// Closing the socket is the only way to end a blocked read: do it as
	// soon as Run is cancelled, with a 1000 close frame.
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
	pingTimeout := a.tune.pingTimeout
	ws.SetPingHandler(func(data string) error {
		// Slack pings to check the connection; each ping proves it alive.
		_ = ws.SetReadDeadline(time.Now().Add(pingTimeout))
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(timeout))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			return err
		}
		return nil
	})

	_ = ws.SetReadDeadline(time.Now().Add(timeout))
	hello, err := c.read()
	if err != nil {
		return endReason(ctx, "waiting for hello", err)
	}
	if hello.Type != socketmode.RequestTypeHello {
		return fmt.Errorf("expected hello from Slack Socket Mode, got %q", hello.Type)
	}
	if hello.NumConnections > 1 {
		// Slack spreads events over every open connection of the app:
		// another process with the same app token takes some of them.
		a.log.Warn("another Socket Mode connection is open for this Slack app; it will receive some of the events meant for this gateway",
			"num_connections", hello.NumConnections)
	}
	a.log.Info("connected to Slack Socket Mode", "num_connections", hello.NumConnections, "host", hello.DebugInfo.Host)
	if !emit(ctx, events, shared.Event{Health: &shared.Health{State: shared.Connected, Message: "connected to Slack (Socket Mode)"}}) {
		return ctx.Err()
	}
	for {
		_ = ws.SetReadDeadline(time.Now().Add(pingTimeout))
		req, err := c.read()
		if err != nil {
			var syntax *json.SyntaxError
			if errors.As(err, &syntax) {
				a.log.Warn("ignoring a Socket Mode message that is not JSON", "error", err)
				continue
			}
			return endReason(ctx, "reading from Socket Mode", err)
		}
		switch req.Type {
		case socketmode.RequestTypeEventsAPI:
			if err := a.handleEnvelope(ctx, c, req, events); err != nil {
				return err
			}
		case socketmode.RequestTypeDisconnect:
			if req.Reason == "link_disabled" {
				return kit.Fatal(CodeSocketMode, "Slack turned Socket Mode off for this app (disconnect: link_disabled)",
					"turn Socket Mode on in the Slack app settings (Settings → Socket Mode), then restart the platform")
			}
			a.log.Debug("Slack asked for a new connection", "reason", req.Reason)
			return fmt.Errorf("%w (disconnect: %s)", errRefresh, req.Reason)
		case socketmode.RequestTypeSlashCommands, socketmode.RequestTypeInteractive:
			// Not used by this app; acknowledged so Slack does not retry.
			if err := c.ack(req.EnvelopeID); err != nil {
				return err
			}
		case socketmode.RequestTypeHello:
		default:
			a.log.Debug("ignoring a Socket Mode message", "type", req.Type)
			if req.EnvelopeID != "" {
				if err := c.ack(req.EnvelopeID); err != nil {
					return err
				}
			}
		}
	}
}

// handleEnvelope hands an events_api envelope's message to the host and
// acknowledges the envelope once the host has taken it (or when there is
// nothing to take). A message the host already took, delivered again after
// a reconnect or once as a message and once as an app_mention, is
// acknowledged without being handed over twice. An envelope that was not
// taken is not acknowledged: Slack delivers it again.
func (a *Adapter) handleEnvelope(ctx context.Context, c *conn, req *socketmode.Request, events chan<- shared.Event) error {
	ev, err := slackevents.ParseEvent(req.Payload, slackevents.OptionNoVerifyToken())
	if err != nil {
		// An event type this bot does not know: nothing to answer.
		a.log.Debug("ignoring an event", "error", err)
		return c.ack(req.EnvelopeID)
	}
	s, _, err := a.client()
	if err != nil {
		return err
	}
	userID, botID := a.bot()
	var m *shared.Message
	var denied Denial
	switch data := ev.InnerEvent.Data.(type) {
	case *slackevents.MessageEvent:
		m, denied = fromMessage(s, userID, botID, &a.threads, data)
	case *slackevents.AppMentionEvent:
		m, denied = fromMention(s, userID, botID, data)
	case *slackevents.TokensRevokedEvent:
		if slices.Contains(data.Tokens.Bot, userID) {
			return tokenRejected(botToken, "tokens_revoked event", "token_revoked")
		}
	case *slackevents.AppUninstalledEvent:
		return kit.Fatal(CodeUninstalled, "the Slack app was uninstalled from the workspace (app_uninstalled event)",
			"reinstall the app (Slack app settings → Install App), set the new SLACK_BOT_TOKEN, and restart the platform")
	}
	switch {
	case denied == deniedBadIDs:
		a.log.Warn("dropped a message whose ids are unusable", "type", ev.InnerEvent.Type, "envelope_id", shared.LogValue(req.EnvelopeID))
	case denied != "":
		a.log.Debug("not answering a message", "type", ev.InnerEvent.Type, "reason", string(denied))
	case m == nil:
	case a.seen.has(m.ID):
		a.log.Debug("message already handed to the host; acknowledging again", "message_id", shared.LogValue(m.ID),
			"retry_attempt", req.RetryAttempt)
	default:
		a.log.Debug("message received", "channel", m.ConversationID, "user", m.UserID, "message_id", m.ID,
			"retry_attempt", req.RetryAttempt)
		if err := shared.Deliver(ctx, events, m); err != nil {
			return fmt.Errorf("handing message %s to the host: %w", m.ID, err)
		}
		a.seen.add(m.ID)
	}
	return c.ack(req.EnvelopeID)
}

// ack acknowledges an envelope.
func (c *conn) ack(envelopeID string) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.timeout))
	if err := c.ws.WriteJSON(socketmode.Response{EnvelopeID: envelopeID}); err != nil {
		return fmt.Errorf("acknowledging envelope %s: %w", envelopeID, err)
	}
	return nil
}

func (c *conn) read() (*socketmode.Request, error) {
	_, data, err := c.ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	var req socketmode.Request
	if err := json.Unmarshal(data, &req); err != nil {
		return nil, fmt.Errorf("decoding a Socket Mode message: %w", err)
	}
	return &req, nil
}

// closeNormal says goodbye with close code 1000 and drops the connection.
func (c *conn) closeNormal() {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(250*time.Millisecond))
	_ = c.ws.Close()
}

// endReason explains why a read failed: Run ending, a silent connection,
// or the websocket's own error.
func endReason(ctx context.Context, doing string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%s: no ping or message from Slack in time, the connection is stale: %w", doing, err)
	}
	return fmt.Errorf("%s: %w", doing, err)
}
