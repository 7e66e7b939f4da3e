package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

func TestDescribeSchema(t *testing.T) {
	d, err := (&Adapter{}).Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]shared.AttributeType{
		"token": shared.TypeString, "api_url": shared.TypeString, "require_mention": shared.TypeBool,
		"allowed_users": shared.TypeListOfString, "allowed_channels": shared.TypeListOfString,
		"allowed_guilds": shared.TypeListOfString, "respond_to_bots": shared.TypeBool,
		"typing": shared.TypeBool, "reply_to_message": shared.TypeBool, "identify_budget": shared.TypeNumber,
		"stream_replies": shared.TypeBool, "edit_interval": shared.TypeDuration,
	}
	if len(d.Schema) != len(want) {
		t.Errorf("schema has %d attributes, want %d", len(d.Schema), len(want))
	}
	for _, a := range d.Schema {
		if want[a.Name] != a.Type {
			t.Errorf("attribute %s has type %v, want %v", a.Name, a.Type, want[a.Name])
		}
		if (a.Name == "token") != a.Required || (a.Name == "token") != a.Sensitive {
			t.Errorf("attribute %s: required=%v sensitive=%v", a.Name, a.Required, a.Sensitive)
		}
		if a.Description == "" {
			t.Errorf("attribute %s has no description", a.Name)
		}
	}
}

func TestConfigureRejectsBadConfig(t *testing.T) {
	tests := map[string]map[string]any{
		"empty token":       {"token": " "},
		"bad api_url":       {"token": "x", "api_url": "discord.com"},
		"zero budget":       {"token": "x", "identify_budget": 0},
		"fractional budget": {"token": "x", "identify_budget": 1.5},
		"wrong type":        {"token": "x", "require_mention": "yes"},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			raw, _ := json.Marshal(cfg)
			err := (&Adapter{}).Configure(context.Background(), shared.Config{Raw: raw})
			var fe *shared.FatalError
			if !errors.As(err, &fe) || fe.Code != kit.CodeInvalidConfig {
				t.Fatalf("Configure = %v, want fatal %s", err, kit.CodeInvalidConfig)
			}
		})
	}
}

func TestConfigureDefaults(t *testing.T) {
	s, err := parseSettings(shared.Config{Raw: json.RawMessage(`{"token":"Bot abc"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if s.token != "abc" || s.apiURL.String() != DefaultAPIURL || !s.access.RequireMention || s.access.AllowBots ||
		!s.typing || !s.replyToMessage || s.identifyBudget != 20 || s.gatewayVersion() != "10" {
		t.Errorf("defaults = %+v", s)
	}
}
