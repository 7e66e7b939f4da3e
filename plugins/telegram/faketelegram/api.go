package faketelegram

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/go-telegram/bot/models"

	"github.com/plughost/gateway/shared/kit/fakekit"
)

// maxTextLength is Telegram's limit on a message's text, in UTF-16 units.
const maxTextLength = 4096

// wellFormedToken is the shape of a bot token; Telegram answers 404 to a
// path whose token does not have it, and 401 to one it does not know.
var wellFormedToken = regexp.MustCompile(`^[0-9]+:[A-Za-z0-9_-]+$`)

// params are a request's parameters, however they were sent (query string,
// form, multipart form or JSON body); nested objects are JSON text.
type params map[string]string

func (p params) int64(name string) (int64, bool) {
	v, ok := p[name]
	if !ok || v == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

func (p params) int(name string) int {
	n, _ := p.int64(name)
	return int(n)
}

func (p params) bool(name string) bool {
	b, _ := strconv.ParseBool(p[name])
	return b
}

func parseParams(r *http.Request) (params, error) {
	p := params{}
	for k, v := range r.URL.Query() {
		p[k] = v[0]
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		var body map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			return nil, fmt.Errorf("can't parse JSON body: %w", err)
		}
		for k, raw := range body {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				p[k] = s
			} else {
				p[k] = string(raw)
			}
		}
	case "multipart/form-data":
		err := r.ParseMultipartForm(1 << 20)
		if errors.Is(err, io.EOF) {
			break // go-telegram/bot sends an empty body, unterminated, for no parameters
		}
		if err != nil {
			return nil, fmt.Errorf("can't parse multipart form: %w", err)
		}
		for k, v := range r.MultipartForm.Value {
			p[k] = v[0]
		}
	default:
		if err := r.ParseForm(); err != nil {
			return nil, fmt.Errorf("can't parse form: %w", err)
		}
		for k, v := range r.PostForm {
			p[k] = v[0]
		}
	}
	return p, nil
}

// apiError is Telegram's error answer.
type apiError struct {
	status      int
	description string
	retryAfter  int
}

func writeError(w http.ResponseWriter, e apiError) {
	body := map[string]any{"ok": false, "error_code": e.status, "description": e.description}
	if e.retryAfter > 0 {
		body["parameters"] = map[string]any{"retry_after": e.retryAfter}
	}
	writeJSON(w, e.status, body)
}

func writeResult(w http.ResponseWriter, result any) {
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "result": result})
}

func writeJSON(w http.ResponseWriter, status int, v any) { fakekit.WriteJSON(w, status, v) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/bot")
	i := strings.LastIndexByte(rest, '/')
	if !ok || i < 0 {
		writeError(w, apiError{status: http.StatusNotFound, description: "Not Found"})
		return
	}
	token, method := rest[:i], rest[i+1:]
	p, err := parseParams(r)
	s.mu.Lock()
	tokenOK := token == s.token
	s.mu.Unlock()
	req := Request{Method: method, TokenOK: tokenOK, At: time.Now()}
	if p != nil {
		req.Offset, _ = p.int64("offset")
		req.Timeout = p.int("timeout")
	}
	s.calls.Add(req)
	s.http.Stats.Inc(statRequests)
	s.http.Stats.Inc(method)
	switch {
	case !wellFormedToken.MatchString(token):
		writeError(w, apiError{status: http.StatusNotFound, description: "Not Found"})
		return
	case !tokenOK:
		writeError(w, apiError{status: http.StatusUnauthorized, description: "Unauthorized"})
		return
	case err != nil:
		writeError(w, apiError{status: http.StatusBadRequest, description: "Bad Request: " + err.Error()})
		return
	}
	chat, _ := p.int64("chat_id")
	if e, failed := s.forced(method, chat); failed {
		writeError(w, e)
		return
	}
	switch method {
	case "getMe":
		writeResult(w, models.User{ID: BotID, IsBot: true, FirstName: "Gateway Test", Username: BotUsername, CanJoinGroups: true})
	case "getUpdates":
		s.getUpdates(w, r, p)
	case "sendMessage":
		s.sendMessage(w, p)
	case "sendChatAction":
		s.sendChatAction(w, p)
	case "deleteWebhook":
		s.mu.Lock()
		s.webhook = ""
		if p.bool("drop_pending_updates") {
			s.dropLocked(s.nextID)
		}
		s.wakeLocked()
		s.mu.Unlock()
		writeResult(w, true)
	case "getWebhookInfo":
		s.mu.Lock()
		info := models.WebhookInfo{URL: s.webhook, PendingUpdateCount: len(s.pending)}
		s.mu.Unlock()
		writeResult(w, info)
	default:
		writeError(w, apiError{status: http.StatusNotFound, description: "Not Found: method not found"})
	}
}

// forced returns the forced answer for a call, if one applies, and counts
// it against its Times.
func (s *Server) forced(method string, chat int64) (apiError, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.failures {
		if f.Method != method || (f.ChatID != 0 && f.ChatID != chat) {
			continue
		}
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.failures = slices.Delete(s.failures, i, i+1)
			}
		}
		desc := f.Description
		if desc == "" {
			desc = http.StatusText(f.Status)
			if f.Status == http.StatusTooManyRequests {
				desc = fmt.Sprintf("Too Many Requests: retry after %d", f.RetryAfter)
			}
		}
		return apiError{status: f.Status, description: desc, retryAfter: f.RetryAfter}, true
	}
	return apiError{}, false
}

// dropLocked confirms every update below offset. Callers hold s.mu.
func (s *Server) dropLocked(offset int64) {
	s.pending = slices.DeleteFunc(s.pending, func(u *models.Update) bool { return u.ID < offset })
	s.confirmed = max(s.confirmed, offset)
}

// getUpdates answers at once when updates at or after offset are pending,
// else waits up to timeout seconds for one. Like Telegram, a newer call ends
// an older waiting one with a 409.
func (s *Server) getUpdates(w http.ResponseWriter, r *http.Request, p params) {
	s.mu.Lock()
	lost := s.holdPolls
	s.mu.Unlock()
	if lost {
		// Lost on the way: never applied, never answered.
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		return
	}
	offset, hasOffset := p.int64("offset")
	limit := p.int("limit")
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	deadline := time.NewTimer(min(time.Duration(p.int("timeout"))*time.Second, maxPoll))
	defer deadline.Stop()
	timedOut := false
	applied := false
	kill := make(chan struct{})
	s.mu.Lock()
	for other := range s.polls {
		close(other)
		delete(s.polls, other)
	}
	s.polls[kill] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.polls, kill)
		s.mu.Unlock()
	}()
	for {
		s.mu.Lock()
		changed := s.changed
		var fail *apiError
		var out []*models.Update
		switch {
		case s.closed:
			fail = &apiError{status: http.StatusBadGateway, description: "Bad Gateway"}
		case s.webhook != "":
			fail = &apiError{status: http.StatusConflict, description: ConflictWebhook}
		case s.conflict:
			fail = &apiError{status: http.StatusConflict, description: ConflictPoller}
		default:
			if !applied {
				applied = true
				switch {
				case hasOffset && offset > 0:
					s.dropLocked(offset)
				case hasOffset && offset < 0 && int(-offset) < len(s.pending):
					s.dropLocked(s.pending[len(s.pending)+int(offset)].ID)
				}
			}
			for _, u := range s.pending {
				if len(out) < limit && (!hasOffset || offset <= 0 || u.ID >= offset) {
					out = append(out, u)
				}
			}
		}
		s.mu.Unlock()
		switch {
		case fail != nil:
			writeError(w, *fail)
			return
		case len(out) > 0 || timedOut:
			if out == nil {
				out = []*models.Update{}
			}
			writeResult(w, out)
			return
		}
		select {
		case <-changed:
			if !s.tokenIs(p, r) {
				writeResult(w, []*models.Update{}) // revoked: end as if timed out
				return
			}
		case <-deadline.C:
			timedOut = true
		case <-kill:
			writeError(w, apiError{status: http.StatusConflict, description: ConflictPoller})
			return
		case <-r.Context().Done():
			return
		}
	}
}

// tokenIs reports whether the request's token is still the accepted one.
func (s *Server) tokenIs(_ params, r *http.Request) bool {
	rest := strings.TrimPrefix(r.URL.Path, "/bot")
	token := rest[:strings.LastIndexByte(rest, '/')]
	s.mu.Lock()
	defer s.mu.Unlock()
	return token == s.token
}

func (s *Server) sendMessage(w http.ResponseWriter, p params) {
	chat, ok := p.int64("chat_id")
	if !ok {
		writeError(w, apiError{status: http.StatusBadRequest, description: "Bad Request: chat not found"})
		return
	}
	text := p["text"]
	if strings.TrimSpace(text) == "" {
		writeError(w, apiError{status: http.StatusBadRequest, description: "Bad Request: message text is empty"})
		return
	}
	if len(utf16.Encode([]rune(text))) > maxTextLength {
		writeError(w, apiError{status: http.StatusBadRequest, description: "Bad Request: message is too long"})
		return
	}
	var reply struct {
		MessageID                int  `json:"message_id"`
		AllowSendingWithoutReply bool `json:"allow_sending_without_reply"`
	}
	if raw := p["reply_parameters"]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &reply); err != nil {
			writeError(w, apiError{status: http.StatusBadRequest, description: "Bad Request: can't parse reply parameters JSON object"})
			return
		}
	}
	thread := p.int("message_thread_id")
	s.mu.Lock()
	defer s.mu.Unlock()
	if reply.MessageID != 0 && !slices.Contains(s.chats[chat], reply.MessageID) {
		if !reply.AllowSendingWithoutReply {
			writeError(w, apiError{status: http.StatusBadRequest, description: "Bad Request: message to be replied not found"})
			return
		}
		reply.MessageID = 0
	}
	id := s.newMessageIDLocked(chat)
	s.chats[chat] = append(s.chats[chat], id)
	s.posted.Add(Posted{MessageID: id, ChatID: chat, ThreadID: thread, Text: text,
		ReplyTo: reply.MessageID, ParseMode: p["parse_mode"]})
	chatType := models.ChatTypePrivate
	if chat < 0 {
		chatType = models.ChatTypeSupergroup
	}
	writeResult(w, models.Message{
		ID: id, MessageThreadID: thread, Date: int(time.Now().Unix()), Text: text,
		Chat: models.Chat{ID: chat, Type: chatType},
		From: &models.User{ID: BotID, IsBot: true, FirstName: "Gateway Test", Username: BotUsername},
	})
}

func (s *Server) sendChatAction(w http.ResponseWriter, p params) {
	chat, ok := p.int64("chat_id")
	if !ok {
		writeError(w, apiError{status: http.StatusBadRequest, description: "Bad Request: chat not found"})
		return
	}
	action := p["action"]
	if action == "" {
		writeError(w, apiError{status: http.StatusBadRequest, description: "Bad Request: wrong type of action"})
		return
	}
	s.actions.Add(Action{ChatID: chat, ThreadID: p.int("message_thread_id"), Action: action})
	writeResult(w, true)
}
