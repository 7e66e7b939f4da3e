package kit

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestFatalHelpers(t *testing.T) {
	err := fmt.Errorf("sending: %w", Unauthorized("Discord rejected the bot token (REST 401)", "check DISCORD_TOKEN"))
	fe := AsFatal(err)
	if fe == nil || fe.Code != CodeTokenRejected || fe.Hint != "check DISCORD_TOKEN" {
		t.Fatalf("AsFatal(Unauthorized) = %+v", fe)
	}
	if fe := AsFatal(InvalidConfig("token is empty", "set token")); fe == nil || fe.Code != CodeInvalidConfig ||
		fe.Message != "invalid config: token is empty" {
		t.Fatalf("InvalidConfig = %+v", fe)
	}
	if AsFatal(errors.New("network")) != nil {
		t.Fatal("AsFatal found a fatal error in a plain one")
	}
}

func TestParseURL(t *testing.T) {
	u, err := ParseURL("api_url", "", "https://api.example.com/v1/")
	if err != nil || u.String() != "https://api.example.com/v1" {
		t.Fatalf("default: %v %v", u, err)
	}
	u, err = ParseURL("api_url", " http://127.0.0.1:9/x/ ", "https://api.example.com")
	if err != nil || u.String() != "http://127.0.0.1:9/x" {
		t.Fatalf("given: %v %v", u, err)
	}
	for _, bad := range []string{"ftp://x", "127.0.0.1:80", "http://", "://"} {
		_, err := ParseURL("api_url", bad, "https://api.example.com")
		if fe := AsFatal(err); fe == nil || fe.Code != CodeInvalidConfig || !strings.Contains(fe.Message, "api_url") {
			t.Errorf("ParseURL(%q) = %v, want invalid_config naming api_url", bad, err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	if d, err := ParseDuration("timeout", "", time.Minute); err != nil || d != time.Minute {
		t.Fatalf("default: %v %v", d, err)
	}
	if d, err := ParseDuration("timeout", "3s", time.Minute); err != nil || d != 3*time.Second {
		t.Fatalf("given: %v %v", d, err)
	}
	for _, bad := range []string{"soon", "-1s", "0s"} {
		_, err := ParseDuration("timeout", bad, time.Minute)
		if fe := AsFatal(err); fe == nil || !strings.Contains(fe.Message, "timeout") {
			t.Errorf("ParseDuration(%q) = %v, want invalid_config naming timeout", bad, err)
		}
	}
}
