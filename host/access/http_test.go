package access

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestAdminEndpoints(t *testing.T) {
	f := newFixture(t)
	f.gate.Configure(pairing, nil)
	mux := http.NewServeMux()
	f.gate.Routes(mux)
	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %s: not JSON: %q", method, path, rec.Body.String())
		}
		return rec.Code, out
	}
	f.gate.Admit("discord", dm("u1", "hi"))
	f.settle()
	code := codeIn(t, f.sent.all()[0].Text)

	if st, out := call("GET", "/v1/pairing", ""); st != 200 || len(out["pending"].([]any)) != 1 {
		t.Fatalf("list: %d %v", st, out)
	}
	if st, out := call("POST", "/v1/pairing/approve", `{"code":"NOPE2345"}`); st != 404 || !strings.Contains(out["error"].(string), "unknown pairing code NOPE2345") {
		t.Fatalf("unknown code: %d %v", st, out)
	}
	for _, body := range []string{`{`, `{"code":""}`, `{"cod":"x"}`} {
		if st, _ := call("POST", "/v1/pairing/approve", body); st != 400 {
			t.Errorf("approve %s: %d, want 400", body, st)
		}
	}
	f.clock.Add(2 * time.Hour)
	if st, out := call("POST", "/v1/pairing/approve", `{"code":"`+code+`"}`); st != 410 || !strings.Contains(out["error"].(string), "expired") {
		t.Fatalf("expired code: %d %v", st, out)
	}
	if st, out := call("POST", "/v1/pairing/revoke", `{"platform":"discord","user_id":"u1"}`); st != 404 || !strings.Contains(out["error"].(string), "not approved") {
		t.Fatalf("revoke of a stranger: %d %v", st, out)
	}
	if st, _ := call("POST", "/v1/pairing/revoke", `{"platform":"discord"}`); st != 400 {
		t.Fatalf("revoke without user_id: %d", st)
	}
	if st, out := call("GET", "/v1/usage?since=1h&top=5", ""); st != 200 || out["total"] == nil {
		t.Fatalf("usage: %d %v", st, out)
	}
	if st, _ := call("GET", "/v1/usage?since=yesterday", ""); st != 400 {
		t.Fatalf("bad since: %d", st)
	}
	if st, _ := call("GET", "/v1/usage?top=-1", ""); st != 400 {
		t.Fatalf("bad top: %d", st)
	}
}
