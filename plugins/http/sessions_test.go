package main

import (
	"net/http"
	"testing"
)

// GET /v1/sessions/{id}/messages: behind auth_token like every /v1/ path,
// a bad id is a 400, and a host that cannot answer (protocol 1, which the
// test's connection speaks) is a clear 501.
func TestSessionMessagesEndpointErrors(t *testing.T) {
	h := start(t, map[string]any{"auth_token": "s3cret"})
	auth := http.Header{"Authorization": {"Bearer s3cret"}}
	if r := h.do(http.MethodGet, "/v1/sessions/alice/messages", "", nil); r.Err != nil || r.Status != http.StatusUnauthorized {
		t.Errorf("no token: %d %v, want 401", r.Status, r.Err)
	}
	if r := h.do(http.MethodGet, "/v1/sessions/%01/messages", "", auth); r.Err != nil || r.Status != http.StatusBadRequest {
		t.Errorf("control character in the id: %d %v, want 400", r.Status, r.Err)
	}
	r := h.do(http.MethodGet, "/v1/sessions/alice/messages", "", auth)
	errObj, _ := r.Body["error"].(map[string]any)
	if r.Err != nil || r.Status != http.StatusNotImplemented || errObj["code"] != "not_supported" {
		t.Errorf("protocol 1 host: %d %v %v, want 501 not_supported", r.Status, r.Body, r.Err)
	}
}
