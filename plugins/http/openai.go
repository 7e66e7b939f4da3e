package main

import (
	"bytes"
	"cmp"
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

// The OpenAI-compatible API (issue 16): POST /v1/chat/completions and
// GET /v1/models[/{id}], with OpenAI's error shape so official SDKs raise
// their usual exceptions.

// gatewayModel is the model id the API lists: the gateway's configured
// default model.
const gatewayModel = "gateway"

// chatRequest is the part of a chat completions request the gateway uses.
type chatRequest struct {
	Model         string        `json:"model"`
	Messages      []chatMessage `json:"messages"`
	Stream        bool          `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	User string `json:"user"`
}

// chatMessage is one message of a request: content is a string or a list
// of parts, of which the text ones count.
type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// text returns the message's text: a string content, or its text parts
// joined by newlines.
func (m chatMessage) text() (string, error) {
	if len(m.Content) == 0 || string(m.Content) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(m.Content, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(m.Content, &parts); err != nil {
		return "", errors.New("a message's content is neither a string nor a list of parts")
	}
	var texts []string
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content parts of type %q are not supported; send text", p.Type)
		}
		texts = append(texts, p.Text)
	}
	return strings.Join(texts, "\n"), nil
}

// apiError is OpenAI's error object.
type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// writeAPIError answers with OpenAI's error shape.
func writeAPIError(w http.ResponseWriter, status int, typ, code, msg string) {
	e := apiError{Message: msg, Type: typ}
	if code != "" {
		e.Code = &code
	}
	writeJSON(w, status, map[string]apiError{"error": e})
}

func (a *adapter) openAIRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/chat/completions", a.apiAuth(a.handleChatCompletions))
	mux.HandleFunc("GET /v1/models", a.apiAuth(a.handleModels))
	mux.HandleFunc("GET /v1/models/{id...}", a.apiAuth(a.handleModel))
	mux.HandleFunc("GET /v1/sessions/{id}/messages", a.apiAuth(a.handleSessionMessages))
	for path, allow := range map[string]string{"/v1/chat/completions": "POST", "/v1/models": "GET", "/v1/models/": "GET"} {
		mux.HandleFunc(path, a.apiAuth(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeAPIError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "use "+allow)
		}))
	}
}

// apiAuth checks auth_token before h, answering a 401 in OpenAI's shape.
func (a *adapter) apiAuth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gateway"`)
			writeAPIError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "missing or wrong bearer token (Authorization: Bearer auth_token)")
			return
		}
		h(w, r)
	}
}

// modelObject is one entry of GET /v1/models.
type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

var theModel = modelObject{ID: gatewayModel, Object: "model", OwnedBy: "gateway"}

func (a *adapter) handleModels(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []modelObject{theModel}})
}

func (a *adapter) handleModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !listedModel(id) {
		writeModelNotFound(w, id)
		return
	}
	writeJSON(w, http.StatusOK, theModel)
}

// listedModel reports whether id is one GET /v1/models lists.
func listedModel(id string) bool { return id == gatewayModel }

// turnModel maps a request's model to the turn's: "" (the configured
// default) for none, gateway or a listed id; PROVIDER/MODEL as it is (the
// host checks it as /model does). ok is false for anything else.
func turnModel(model string) (turn string, ok bool) {
	switch {
	case model == "" || listedModel(model):
		return "", true
	case strings.Contains(model, "/"):
		return model, true
	default:
		return "", false
	}
}

func writeModelNotFound(w http.ResponseWriter, model string) {
	writeAPIError(w, http.StatusNotFound, "invalid_request_error", "model_not_found",
		fmt.Sprintf("the model %q does not exist; use gateway (the configured default), PROVIDER/MODEL, or one GET /v1/models lists", model))
}

// decodeChatRequest reads and checks a chat completions body; its errors
// are the message of a 400.
func decodeChatRequest(body []byte) (chatRequest, error) {
	var req chatRequest
	if !utf8.Valid(body) {
		return req, errors.New("request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("request body is not valid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, errors.New("request body has data after the JSON object; send exactly one object")
	}
	if len(req.Messages) == 0 {
		return req, errors.New(`"messages" is required and must not be empty`)
	}
	return req, nil
}

func (a *adapter) handleChatCompletions(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeAPIError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large", "request body is larger than max_body")
		}
		return // otherwise the client went away
	}
	req, err := decodeChatRequest(body)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", "", err.Error())
		return
	}
	if err := shared.CheckID(`"model"`, req.Model); err != nil {
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", "", err.Error())
		return
	}
	model, ok := turnModel(req.Model)
	if !ok {
		writeModelNotFound(w, req.Model)
		return
	}
	session := r.Header.Get("X-Session-Id")
	if session == "" {
		session = req.User
	}
	if err := shared.CheckID("the session (X-Session-Id or user)", session); err != nil {
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", "", err.Error())
		return
	}
	msg, err := req.message(session)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", "", err.Error())
		return
	}
	msg.Model = model
	answered := cmp.Or(model, gatewayModel)
	if req.Stream {
		msg.Stream = true
		a.streamCompletion(w, r, msg, answered, req.includeUsage())
		return
	}
	rep, err := a.converseMsg(r.Context(), msg)
	if err != nil {
		a.writeConverseError(w, err)
		return
	}
	if writeReplyError(w, rep) {
		return
	}
	id := "chatcmpl-" + rep.ReplyToID
	res := map[string]any{
		"id": id, "object": "chat.completion", "created": time.Now().Unix(), "model": answered,
		"choices": []map[string]any{{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": rep.Text},
			"finish_reason": "stop",
		}},
	}
	if rep.Usage != nil {
		res["usage"] = usageObject(rep.Usage)
	}
	writeJSON(w, http.StatusOK, res)
}

// writeConverseError answers a request that got no reply (err from
// converse or submit): nothing for a client that went away.
func (a *adapter) writeConverseError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errTimeout):
		writeAPIError(w, http.StatusGatewayTimeout, "timeout", "timeout", "no reply within "+a.timeout.String())
	case errors.Is(err, errNotConnected), errors.Is(err, errHostStalled), errors.Is(err, errDisconnected):
		writeAPIError(w, http.StatusServiceUnavailable, "api_error", "unavailable", err.Error())
	}
}

// writeReplyError answers a reply that is a failure (busy: 429; an unknown
// model: 404; any other error: 502) and reports whether it was one.
func writeReplyError(w http.ResponseWriter, rep shared.Reply) bool {
	switch {
	case rep.Kind == shared.KindBusy:
		w.Header().Set("Retry-After", busyRetryAfter)
		writeAPIError(w, http.StatusTooManyRequests, "rate_limit_error", "session_busy", rep.Text)
	case rep.Kind == shared.KindError && rep.Code == shared.CodeModelNotFound:
		writeAPIError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", rep.Text)
	case rep.Kind == shared.KindError:
		writeAPIError(w, http.StatusBadGateway, "api_error", "upstream_error", rep.Text)
	default:
		return false
	}
	return true
}

// includeUsage reports whether a streaming request asked for the usage
// chunk (stream_options.include_usage).
func (req chatRequest) includeUsage() bool {
	return req.StreamOptions != nil && req.StreamOptions.IncludeUsage
}

// usageObject is OpenAI's usage object.
func usageObject(u *shared.Usage) map[string]int64 {
	return map[string]int64{"prompt_tokens": u.PromptTokens, "completion_tokens": u.CompletionTokens,
		"total_tokens": u.PromptTokens + u.CompletionTokens}
}

// message turns the request into the message for the host: with a
// session, its last message is the session's new turn (the session keeps
// the history); without one, the request is stateless and its earlier
// messages are the history. Its errors are the message of a 400.
func (req chatRequest) message(session string) (*shared.Message, error) {
	last := req.Messages[len(req.Messages)-1]
	text, err := last.text()
	if err != nil {
		return nil, err
	}
	if last.Role != "user" || strings.TrimSpace(text) == "" {
		return nil, errors.New("the last message must be a user message with text: it is the new turn")
	}
	if session != "" {
		return sessionMessage(session, text), nil
	}
	st := &shared.Stateless{History: make([]shared.HistoryMessage, 0, len(req.Messages)-1)}
	for i, m := range req.Messages[:len(req.Messages)-1] {
		role, ok := historyRoles[m.Role]
		if !ok {
			return nil, fmt.Errorf("messages[%d]: role %q is not supported here; send system, developer, user and assistant messages", i, m.Role)
		}
		t, err := m.text()
		if err != nil {
			return nil, fmt.Errorf("messages[%d]: %w", i, err)
		}
		st.History = append(st.History, shared.HistoryMessage{Role: role, Text: t})
	}
	return &shared.Message{ConversationID: statelessUser, UserID: statelessUser, UserName: statelessUser,
		Text: text, Stateless: st}, nil
}

// historyRoles maps the roles a stateless request may use to the
// conversation's (OpenAI's newer "developer" is a system message).
var historyRoles = map[string]string{"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}

// statelessUser is the conversation and user of stateless requests: the
// access policy counts them as one user.
const statelessUser = "stateless"
