package adapter

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

func TestParseSettingsDefaults(t *testing.T) {
	s, err := parseSettings(shared.Config{Raw: []byte(`{"token":" 123:abc "}`)})
	if err != nil {
		t.Fatal(err)
	}
	if s.token != "123:abc" || s.apiURL != DefaultAPIURL || !s.access.RequireMention || s.deleteWebhook ||
		s.pollTimeout != 30*time.Second || len(s.access.Users) != 0 || len(s.access.Chats) != 0 {
		t.Fatalf("defaults = %+v", s)
	}
	s, err = parseSettings(shared.Config{Raw: []byte(`{"token":"1:a","api_url":"http://127.0.0.1:9/","require_mention":false,
		"allowed_users":["42"," 43 "],"allowed_chats":["-1001234"],"poll_timeout":"2.5s","delete_webhook":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	if s.apiURL != "http://127.0.0.1:9" || s.access.RequireMention || !s.deleteWebhook || s.pollTimeout != 2*time.Second ||
		!s.access.Users.Has("43") || !s.access.Chats.Has("-1001234") {
		t.Fatalf("settings = %+v", s)
	}
}

func TestParseSettingsErrorsAreFatalWithHints(t *testing.T) {
	for name, raw := range map[string]string{
		"empty token":     `{"token":"  "}`,
		"token with path": `{"token":"1:a/b"}`,
		"api_url":         `{"token":"1:a","api_url":"api.telegram.org"}`,
		"username":        `{"token":"1:a","allowed_users":["@alice"]}`,
		"chat name":       `{"token":"1:a","allowed_chats":["my group"]}`,
		"poll too long":   `{"token":"1:a","poll_timeout":"2m"}`,
		"poll too short":  `{"token":"1:a","poll_timeout":"100ms"}`,
		"not json":        `{`,
	} {
		_, err := parseSettings(shared.Config{Raw: []byte(raw)})
		var fe *shared.FatalError
		if !errors.As(err, &fe) || fe.Code != kit.CodeInvalidConfig {
			t.Errorf("%s: %v, want an invalid_config fatal error", name, err)
			continue
		}
		if name != "not json" && fe.Hint == "" {
			t.Errorf("%s: no hint", name)
		}
		if strings.Contains(fe.Error(), "1:a/b") {
			t.Errorf("%s: the token is in the error", name)
		}
	}
}

func TestDescribeSchemaNamesAreTheContract(t *testing.T) {
	d, err := (&Adapter{}).Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range d.Schema {
		names = append(names, a.Name)
		if a.Name == "token" && (!a.Sensitive || !a.Required) {
			t.Error("token must be required and sensitive")
		}
	}
	want := "token api_url require_mention allowed_users allowed_chats poll_timeout delete_webhook"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("schema = %s, want %s", got, want)
	}
	if d.Name != "telegram" {
		t.Fatalf("name = %q", d.Name)
	}
}
