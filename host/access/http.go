package access

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/plughost/gateway/host/store"
)

// Defaults of GET /v1/usage (and `gateway usage`).
const (
	DefaultUsageSince = 24 * time.Hour
	DefaultUsageTop   = 20
)

// Routes registers the gate's admin endpoints on mux: GET /v1/pairing,
// POST /v1/pairing/approve, POST /v1/pairing/revoke and GET /v1/usage.
func (g *Gate) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/pairing", g.handleList)
	mux.HandleFunc("POST /v1/pairing/approve", g.handleApprove)
	mux.HandleFunc("POST /v1/pairing/revoke", g.handleRevoke)
	mux.HandleFunc("GET /v1/usage", g.handleUsage)
}

// ApproveRequest is the body of POST /v1/pairing/approve.
type ApproveRequest struct {
	Code string `json:"code"`
}

// RevokeRequest is the body of POST /v1/pairing/revoke.
type RevokeRequest struct {
	Platform string `json:"platform"`
	UserID   string `json:"user_id"`
}

// ErrorBody is the body of an admin error answer.
type ErrorBody struct {
	Error string `json:"error"`
}

func (g *Gate) handleList(w http.ResponseWriter, _ *http.Request) {
	p, err := g.List()
	if err != nil {
		g.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (g *Gate) handleApprove(w http.ResponseWriter, r *http.Request) {
	var req ApproveRequest
	if !readJSON(w, r, &req) {
		return
	}
	if NormalizeCode(req.Code) == "" {
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "missing code"})
		return
	}
	a, err := g.Approve(r.Context(), req.Code)
	if err != nil {
		g.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (g *Gate) handleRevoke(w http.ResponseWriter, r *http.Request) {
	var req RevokeRequest
	if !readJSON(w, r, &req) {
		return
	}
	if req.Platform == "" || req.UserID == "" {
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "platform and user_id are required"})
		return
	}
	if err := g.Revoke(r.Context(), req.Platform, req.UserID); err != nil {
		if errors.Is(err, store.ErrNotPaired) {
			err = fmt.Errorf("user %s of platform %s is not approved: %w", req.UserID, req.Platform, err)
		}
		g.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Approval{Platform: req.Platform, UserID: req.UserID})
}

func (g *Gate) handleUsage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, err := ParseSince(q.Get("since"), g.opts.Now())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: err.Error()})
		return
	}
	top := DefaultUsageTop
	if s := q.Get("top"); s != "" {
		if top, err = strconv.Atoi(s); err != nil || top < 0 {
			writeJSON(w, http.StatusBadRequest, ErrorBody{Error: fmt.Sprintf("top must be a number ≥ 0 (0 for all users), not %q", s)})
			return
		}
	}
	u, err := g.Report(since, top)
	if err != nil {
		g.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

// ParseSince reads the since of a usage query: a duration back from now
// ("24h", "90m"), an RFC 3339 time, or "" for DefaultUsageSince.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return now.Add(-DefaultUsageSince), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("since must be a positive duration such as 24h or an RFC 3339 time, not %q", s)
}

// fail answers an error: the operator's mistakes with 404 (unknown code,
// user not approved) or 410 (expired code), anything else with 500.
func (g *Gate) fail(w http.ResponseWriter, err error) {
	var exp *store.ExpiredCodeError
	switch {
	case errors.As(err, &exp):
		writeJSON(w, http.StatusGone, ErrorBody{Error: err.Error()})
	case errors.Is(err, store.ErrUnknownCode), errors.Is(err, store.ErrNotPaired):
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: err.Error()})
	default:
		g.log.Error("admin request failed", "error", err)
		writeJSON(w, http.StatusInternalServerError, ErrorBody{Error: err.Error()})
	}
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "bad JSON: " + err.Error()})
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
