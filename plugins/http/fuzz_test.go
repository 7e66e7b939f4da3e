package main

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/plughost/gateway/shared"
)

// FuzzDecodeMessageRequest feeds arbitrary bodies to the POST /v1/messages
// decoder: it never panics, and what it accepts is one JSON object of
// valid UTF-8 with a usable session and a text that is not blank.
func FuzzDecodeMessageRequest(f *testing.F) {
	for _, seed := range []string{
		`{"session":"alice","text":"hello"}`,
		`{"session":"a","text":"hi"}}`,
		`{"session":"a","text":"hi"}` + "\n\t ",
		"{\"session\":\"a\",\"text\":\"hi \xff\"}",
		`{"session":"a\u0000","text":"hi"}`,
		`{"session":"a","text":"\ud800"}`,
		`{"session":1,"text":"hi"}`,
		`{"session":"a","session":"b","text":"hi"}`,
		`null`,
		`[]`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeMessageRequest(body)
		if err != nil {
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("the reason is not valid UTF-8: %q", err.Error())
			}
			return
		}
		if !utf8.Valid(body) {
			t.Fatalf("accepted a body that is not valid UTF-8: %q", body)
		}
		if err := shared.CheckID("session", req.Session); err != nil || strings.TrimSpace(req.Session) == "" {
			t.Fatalf("accepted the session %q: %v", req.Session, err)
		}
		if strings.TrimSpace(req.Text) == "" || !utf8.ValidString(req.Text) {
			t.Fatalf("accepted the text %q", req.Text)
		}
		// What was accepted is what a client meant: encoding it again and
		// decoding that gives the same request.
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeMessageRequest(again)
		if err != nil || back != req {
			t.Fatalf("accepted %q, which does not survive a round trip: %+v, %v", body, back, err)
		}
	})
}
