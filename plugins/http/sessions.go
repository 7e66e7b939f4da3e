package main

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/plughost/gateway/shared"
)

// GET /v1/sessions/{id}/messages: a session's conversation as the host
// keeps it (since its last /new), so that the web page (or any client)
// shows it again after a reload.

// transcriptMessage is one message of the answer.
type transcriptMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	Created int64  `json:"created"`
}

func (a *adapter) handleSessionMessages(w http.ResponseWriter, r *http.Request) {
	session := r.PathValue("id")
	if session == "" {
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", "", "name the session: /v1/sessions/{id}/messages")
		return
	}
	if err := shared.CheckID("the session", session); err != nil {
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", "", err.Error())
		return
	}
	t, err := a.askTranscript(r.Context(), session)
	switch {
	case err == nil:
	case errors.Is(err, shared.ErrTranscriptUnsupported):
		writeAPIError(w, http.StatusNotImplemented, "api_error", "not_supported", err.Error())
		return
	case errors.Is(err, errTimeout):
		writeAPIError(w, http.StatusGatewayTimeout, "timeout", "timeout", "the gateway host did not answer within "+a.timeout.String())
		return
	case errors.Is(err, errNotConnected), errors.Is(err, errDisconnected):
		writeAPIError(w, http.StatusServiceUnavailable, "api_error", "unavailable", err.Error())
		return
	case r.Context().Err() != nil:
		return // the client went away
	default:
		writeAPIError(w, http.StatusInternalServerError, "api_error", "transcript_failed", err.Error())
		return
	}
	data := make([]transcriptMessage, len(t.Messages))
	for i, m := range t.Messages {
		data[i] = transcriptMessage{Role: m.Role, Content: m.Text, Created: m.UnixNano / int64(time.Second)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "session": session, "truncated": t.Truncated, "data": data})
}

// askTranscript asks the host for the session's transcript, within the
// configured timeout. Its errors are errNotConnected, errDisconnected,
// errTimeout, shared.ErrTranscriptUnsupported, the host's, or ctx's.
func (a *adapter) askTranscript(ctx context.Context, session string) (shared.Transcript, error) {
	a.mu.Lock()
	link := a.link
	if link == nil {
		a.mu.Unlock()
		return shared.Transcript{}, errNotConnected
	}
	// Run waits for this hand-over: it closes link.done first, which ends
	// the wait below at once.
	link.handover.Add(1)
	a.mu.Unlock()
	defer link.handover.Done()
	ctx, cancel := context.WithTimeoutCause(ctx, a.timeout, errTimeout)
	defer cancel()
	go func() {
		select {
		case <-link.done:
			cancel()
		case <-ctx.Done(): // answered (the deferred cancel), or given up
		}
	}()
	t, err := shared.AskTranscript(ctx, link.events, shared.Conversation{ConversationID: session})
	if err != nil && ctx.Err() != nil {
		select {
		case <-link.done:
			return t, errDisconnected
		default:
		}
		if errors.Is(context.Cause(ctx), errTimeout) {
			return t, errTimeout
		}
		return t, ctx.Err()
	}
	return t, err
}
