package webguard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestGuard(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h, err := Wrap(ok, Options{Listen: "127.0.0.1:8788", AllowedHosts: []string{"chat.example.com"},
		AllowedOrigins: []string{"https://app.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	json := map[string]string{"Content-Type": "application/json"}
	for _, tc := range []struct {
		name, method, host string
		header             map[string]string
		body               string
		want               int
	}{
		{"loopback IP", "GET", "127.0.0.1:8788", nil, "", http.StatusTeapot},
		{"localhost", "GET", "localhost:8788", nil, "", http.StatusTeapot},
		{"IPv6 loopback", "GET", "[::1]:8788", nil, "", http.StatusTeapot},
		{"allowed host", "GET", "Chat.Example.com", nil, "", http.StatusTeapot},
		{"DNS rebinding name", "GET", "attacker.example:8788", nil, "", http.StatusMisdirectedRequest},
		{"no host", "GET", "", nil, "", http.StatusMisdirectedRequest},
		{"JSON POST", "POST", "127.0.0.1:8788", json, "{}", http.StatusTeapot},
		{"JSON POST with charset", "POST", "127.0.0.1:8788", map[string]string{"Content-Type": "application/json; charset=utf-8"}, "{}", http.StatusTeapot},
		{"text/plain POST (no preflight)", "POST", "127.0.0.1:8788", map[string]string{"Content-Type": "text/plain"}, "{}", http.StatusUnsupportedMediaType},
		{"POST without a type", "POST", "127.0.0.1:8788", nil, "{}", http.StatusUnsupportedMediaType},
		{"cross-site POST", "POST", "127.0.0.1:8788", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, "{}", http.StatusForbidden},
		{"cross-origin POST, old browser", "POST", "127.0.0.1:8788", map[string]string{"Content-Type": "application/json", "Origin": "http://localhost:3000"}, "{}", http.StatusForbidden},
		{"same-origin POST", "POST", "127.0.0.1:8788", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:8788"}, "{}", http.StatusTeapot},
		{"same-origin POST, old browser", "POST", "127.0.0.1:8788", map[string]string{"Content-Type": "application/json", "Origin": "http://127.0.0.1:8788"}, "{}", http.StatusTeapot},
		{"allowed origin", "POST", "127.0.0.1:8788", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site", "Origin": "https://app.example.com"}, "{}", http.StatusTeapot},
		{"allowed origin preflight", "OPTIONS", "127.0.0.1:8788", map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}, "", http.StatusNoContent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "http://x/v1/messages", strings.NewReader(tc.body))
			req.Host = tc.host
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
			if tc.want != http.StatusTeapot && tc.want != http.StatusNoContent && !strings.Contains(rec.Body.String(), `"error"`) {
				t.Fatalf("refusal is not a JSON error: %s", rec.Body)
			}
		})
	}
	if _, err := Wrap(ok, Options{AllowedOrigins: []string{"app.example.com"}}); err == nil {
		t.Fatal("an origin without a scheme was accepted")
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:1": true, "127.0.0.2:1": true, "[::1]:1": true, "localhost:1": true,
		"0.0.0.0:1": false, ":1": false, "[::]:1": false, "192.168.1.2:1": false, "myhost:1": false, "junk": false,
	} {
		if got := Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v", addr, got)
		}
	}
}
