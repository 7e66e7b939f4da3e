package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// The admin endpoint has no authentication: a non-loopback admin address
// is refused unless the gateway block opts in, so a typo cannot open it.
func TestAdminOpenToTheNetworkNeedsOptIn(t *testing.T) {
	for _, admin := range []string{"0.0.0.0:8787", ":8787", "192.168.1.5:8787", "[::]:8787"} {
		_, diags := parse([]byte("gateway {\n  admin = \""+admin+"\"\n}"), "config.hcl", env(nil))
		checkDiags(t, diags, [2]string{"config.hcl:2:3: Admin endpoint open to the network", "allow_unauthenticated = true"})
	}
	c := mustParse(t, `gateway {
  admin                 = "0.0.0.0:8787"
  allow_unauthenticated = true
  admin_max_connections = 8
  allowed_hosts         = ["gw.example.com"]
  allowed_origins       = ["https://ops.example.com"]
}`, nil)
	g := c.Gateway
	if !g.AllowUnauthenticated || g.AdminMaxConnections != 8 ||
		!reflect.DeepEqual(g.AllowedHosts, []string{"gw.example.com"}) || !reflect.DeepEqual(g.AllowedOrigins, []string{"https://ops.example.com"}) {
		t.Fatalf("gateway = %+v", g)
	}
	for _, ok := range []string{"127.0.0.1:8787", "localhost:8787", "[::1]:8787", "/run/gateway/admin.sock"} {
		mustParse(t, "gateway {\n  admin = \""+ok+"\"\n}", nil)
	}
}

func TestAdminGuardSettingsAreChecked(t *testing.T) {
	_, diags := parse([]byte("gateway {\n  allowed_origins = [\"ops.example.com\"]\n}"), "config.hcl", env(nil))
	checkDiags(t, diags, [2]string{"config.hcl:2:3: Invalid allowed_origins", "https://host[:port]"})
	_, diags = parse([]byte("gateway {\n  admin_max_connections = 0\n}"), "config.hcl", env(nil))
	checkDiags(t, diags, [2]string{"config.hcl:2:3: Invalid number", "at least 1"})
}

// A provider printed (logs, errors) never shows credentials in its base_url.
func TestProviderPrintsNoBaseURLCredentials(t *testing.T) {
	p := Provider{Name: "x", Type: "openai", BaseURL: "https://keyuser:keypass@api.example.com/v1?key=querysecret"}
	for _, shown := range []string{p.String(), fmt.Sprintf("%v %+v %#v", p, p, p)} {
		for _, secret := range []string{"keyuser", "keypass", "querysecret"} {
			if strings.Contains(shown, secret) {
				t.Errorf("%s shows %q", shown, secret)
			}
		}
		if !strings.Contains(shown, "api.example.com") {
			t.Errorf("%s lost the host", shown)
		}
	}
}
