package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/plughost/gateway/shared"
)

type messageRequest struct {
	Session string `json:"session"`
	Text    string `json:"text"`
	// Stream asks for the reply as server-sent events as it is written.
	Stream bool `json:"stream"`
}

type messageResponse struct {
	Session string `json:"session"`
	Reply   string `json:"reply,omitempty"`
	Error   string `json:"error,omitempty"`
}

func (a *adapter) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", a.handleMessage)
	mux.HandleFunc("/v1/messages", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "use POST")
	})
	a.openAIRoutes(mux)
	if a.cfg.WebUI {
		mux.HandleFunc("GET /{$}", a.handleIndex)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !a.connected() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not connected"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	return mux
}

func (a *adapter) authorized(r *http.Request) bool {
	if a.cfg.AuthToken == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(a.cfg.AuthToken)) == 1
}

func (a *adapter) handleMessage(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gateway"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "request body is larger than max_body")
			return
		}
		return // the client went away
	}
	req, err := decodeMessageRequest(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Stream {
		a.converseStream(w, r, req.Session, req.Text)
		return
	}
	rep, err := a.converse(r.Context(), req.Session, req.Text)
	switch {
	case err == nil:
		writeReply(w, req.Session, rep)
	case errors.Is(err, errTimeout):
		writeJSON(w, http.StatusGatewayTimeout, messageResponse{Session: req.Session, Error: "no reply within " + a.timeout.String()})
	case errors.Is(err, errNotConnected), errors.Is(err, errHostStalled), errors.Is(err, errDisconnected):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	}
	// otherwise the client went away
}

// errTimeout and errDisconnected end a converse that got no reply.
var (
	errTimeout      = errors.New("no reply within the timeout")
	errDisconnected = errors.New("the gateway host disconnected before it replied")
)

// converse hands text for session to the host and waits for the reply, up
// to the configured timeout for the whole exchange. Its errors are
// errNotConnected, errHostStalled, errTimeout, errDisconnected, or the
// context's when the client went away.
func (a *adapter) converse(ctx context.Context, session, text string) (shared.Reply, error) {
	return a.converseMsg(ctx, sessionMessage(session, text))
}

// sessionMessage is a message of the named session.
func sessionMessage(session, text string) *shared.Message {
	return &shared.Message{ConversationID: session, UserID: session, UserName: session, Text: text}
}

// converseMsg is converse for a message built by the caller (see submit).
func (a *adapter) converseMsg(ctx context.Context, msg *shared.Message) (shared.Reply, error) {
	// One deadline for the whole request: handing the message to the host
	// and waiting for its reply.
	timer := time.NewTimer(a.timeout)
	defer timer.Stop()
	id, wt, link, err := a.submit(ctx, msg, timer.C)
	if err != nil {
		return shared.Reply{}, err
	}
	select {
	case <-wt.notify:
		_, rep, _ := wt.take()
		return *rep, nil
	case <-timer.C:
		a.forget(id)
		return shared.Reply{}, errTimeout
	case <-ctx.Done():
		a.forget(id)
		return shared.Reply{}, ctx.Err()
	case <-link.done:
		a.forget(id)
		if _, rep, _ := wt.take(); rep != nil { // it came just in time: the host sent it
			return *rep, nil
		}
		return shared.Reply{}, errDisconnected
	}
}

// converseStream is converse for a client that asked for server-sent
// events: the reply is written as it arrives.
func (a *adapter) converseStream(w http.ResponseWriter, r *http.Request, session, text string) {
	timer := time.NewTimer(a.timeout)
	defer timer.Stop()
	msg := sessionMessage(session, text)
	msg.Stream = true
	id, wt, link, err := a.submit(r.Context(), msg, timer.C)
	if err != nil {
		if errors.Is(err, errNotConnected) || errors.Is(err, errHostStalled) {
			writeError(w, http.StatusServiceUnavailable, err.Error())
		}
		return // otherwise the client went away
	}
	a.streamReply(w, r, session, id, wt, link, timer.C)
}

// busyRetryAfter is the Retry-After of a 429: the session's current reply
// is likely done by then.
const busyRetryAfter = "2"

// decodeMessageRequest decodes and checks a POST /v1/messages body: one
// JSON object and nothing after it, valid UTF-8, a session that is a
// usable id (shared.CheckID) and a text that is not blank. Its errors are
// the reason a 400 gives.
func decodeMessageRequest(body []byte) (messageRequest, error) {
	var req messageRequest
	if !utf8.Valid(body) {
		// encoding/json would quietly turn invalid bytes into U+FFFD.
		return req, errors.New("request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("request body is not valid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, errors.New("request body has data after the JSON object; send exactly one object")
	}
	if strings.TrimSpace(req.Session) == "" {
		return req, errors.New(`"session" is required`)
	}
	if err := shared.CheckID(`"session"`, req.Session); err != nil {
		return req, err
	}
	if strings.TrimSpace(req.Text) == "" {
		return req, errors.New(`"text" is required and must not be empty`)
	}
	return req, nil
}

func writeReply(w http.ResponseWriter, session string, rep shared.Reply) {
	if rep.Kind == shared.KindBusy {
		w.Header().Set("Retry-After", busyRetryAfter)
		writeJSON(w, http.StatusTooManyRequests, messageResponse{Session: session, Error: rep.Text})
		return
	}
	if rep.Kind == shared.KindError {
		writeJSON(w, http.StatusBadGateway, messageResponse{Session: session, Error: rep.Text})
		return
	}
	writeJSON(w, http.StatusOK, messageResponse{Session: session, Reply: rep.Text})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
