package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

func TestDescribeSchema(t *testing.T) {
	d, err := (&Adapter{}).Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The names are fixed by the issue: users and tests rely on them.
	want := map[string]shared.AttributeType{
		"bot_token": shared.TypeString, "app_token": shared.TypeString, "api_url": shared.TypeString,
		"require_mention": shared.TypeBool, "reply_in_thread": shared.TypeBool,
		"allowed_users": shared.TypeListOfString, "allowed_channels": shared.TypeListOfString,
		"respond_to_bots": shared.TypeBool,
	}
	if d.Name != "slack" || len(d.Schema) != len(want) {
		t.Errorf("%s has %d attributes, want slack with %d", d.Name, len(d.Schema), len(want))
	}
	for _, a := range d.Schema {
		if want[a.Name] != a.Type {
			t.Errorf("attribute %s has type %v, want %v", a.Name, a.Type, want[a.Name])
		}
		token := a.Name == "bot_token" || a.Name == "app_token"
		if token != a.Required || token != a.Sensitive {
			t.Errorf("attribute %s: required=%v sensitive=%v", a.Name, a.Required, a.Sensitive)
		}
		if a.Description == "" {
			t.Errorf("attribute %s has no description", a.Name)
		}
	}
}

func TestConfigureRejectsBadConfig(t *testing.T) {
	tests := map[string]struct {
		cfg  map[string]any
		want string // in the message or hint
	}{
		"empty bot token":    {map[string]any{"bot_token": "", "app_token": "xapp-1"}, "SLACK_BOT_TOKEN"},
		"empty app token":    {map[string]any{"bot_token": "xoxb-1", "app_token": " "}, "SLACK_APP_TOKEN"},
		"tokens swapped":     {map[string]any{"bot_token": "xapp-1", "app_token": "xoxb-1"}, "SLACK_BOT_TOKEN"},
		"user token as bot":  {map[string]any{"bot_token": "xoxp-1", "app_token": "xapp-1"}, "xoxb-"},
		"bot token as app":   {map[string]any{"bot_token": "xoxb-1", "app_token": "xoxb-2"}, "SLACK_APP_TOKEN"},
		"api_url not a URL":  {map[string]any{"bot_token": "xoxb-1", "app_token": "xapp-1", "api_url": "slack.com"}, "api_url"},
		"api_url bad scheme": {map[string]any{"bot_token": "xoxb-1", "app_token": "xapp-1", "api_url": "ftp://x/"}, "api_url"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			raw, _ := json.Marshal(tc.cfg)
			err := (&Adapter{}).Configure(context.Background(), shared.Config{Raw: raw})
			var fe *shared.FatalError
			if !errors.As(err, &fe) || fe.Code != kit.CodeInvalidConfig {
				t.Fatalf("Configure: %v, want an invalid_config fatal error", err)
			}
			if !strings.Contains(fe.Error(), tc.want) {
				t.Fatalf("%q does not mention %q", fe.Error(), tc.want)
			}
			if strings.Contains(fe.Error(), "xoxb-1") || strings.Contains(fe.Error(), "xapp-1") {
				t.Fatalf("the error repeats a token: %q", fe.Error())
			}
		})
	}
}

func TestConfigureDefaults(t *testing.T) {
	raw := []byte(`{"bot_token":" xoxb-1 ","app_token":"xapp-1","api_url":"http://127.0.0.1:9/api","allowed_users":["U1",""]}`)
	s, err := parseSettings(shared.Config{Raw: raw})
	if err != nil {
		t.Fatal(err)
	}
	if s.botToken != "xoxb-1" || s.apiURL != "http://127.0.0.1:9/api/" || !s.access.RequireMention || !s.replyInThread ||
		s.access.AllowBots || len(s.access.Users) != 1 || len(s.access.Chats) != 0 {
		t.Fatalf("settings = %+v", s)
	}
	s, err = parseSettings(shared.Config{Raw: []byte(`{"bot_token":"xoxb-1","app_token":"xapp-1"}`)})
	if err != nil || s.apiURL != DefaultAPIURL {
		t.Fatalf("default api_url = %q, %v", s.apiURL, err)
	}
}
