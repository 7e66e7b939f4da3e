package shared_test

import (
	"encoding/json"
	"testing"

	"github.com/plughost/gateway/shared"
)

func TestNamesForDiagnostics(t *testing.T) {
	for v, want := range map[shared.AttributeType]string{
		shared.TypeString: "string", shared.TypeBool: "bool", shared.TypeNumber: "number",
		shared.TypeListOfString: "list(string)", shared.TypeDuration: "duration", 0: "AttributeType(0)",
	} {
		if got := v.String(); got != want {
			t.Errorf("AttributeType(%d) = %q, want %q", int(v), got, want)
		}
	}
	for v, want := range map[shared.HealthState]string{
		shared.Connected: "connected", shared.Degraded: "degraded", shared.Fatal: "fatal", 9: "HealthState(9)",
	} {
		if got := v.String(); got != want {
			t.Errorf("HealthState(%d) = %q, want %q", int(v), got, want)
		}
	}
}

func TestFatalErrorText(t *testing.T) {
	if got := (&shared.FatalError{Message: "bad token"}).Error(); got != "bad token" {
		t.Errorf("without hint = %q", got)
	}
	if got := (&shared.FatalError{Message: "bad token", Hint: "renew it"}).Error(); got != "bad token: renew it" {
		t.Errorf("with hint = %q", got)
	}
}

func TestConfigDecode(t *testing.T) {
	var v struct {
		A string `json:"a"`
	}
	if err := (shared.Config{}).Decode(&v); err != nil || v.A != "" {
		t.Errorf("empty config: %v, %+v", err, v)
	}
	if err := (shared.Config{Raw: json.RawMessage(`{"a":"x"}`)}).Decode(&v); err != nil || v.A != "x" {
		t.Errorf("decode: %v, %+v", err, v)
	}
	if err := (shared.Config{Raw: json.RawMessage(`{"a":`)}).Decode(&v); err == nil {
		t.Error("bad JSON decoded without error")
	}
}
