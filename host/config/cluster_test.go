package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestStoreAndClusterBlocks(t *testing.T) {
	c := mustParse(t, `
store {
  type = "postgres"
  dsn  = env("GATEWAY_DATABASE_URL")
}
cluster {
  name      = "prod"
  lease_ttl = "2s"
}
platform "discord" {
  shards = 4
}
platform "web" {
  plugin    = "http"
  placement = "all"
}
`, map[string]string{"GATEWAY_DATABASE_URL": "postgres://u:s3cret@db/g"})
	if c.Store.Type != StorePostgres || c.Store.DSN != "postgres://u:s3cret@db/g" {
		t.Fatalf("store = %#v", c.Store)
	}
	if c.Cluster == nil || c.Cluster.Name != "prod" || c.Cluster.LeaseTTL != 2*time.Second {
		t.Fatalf("cluster = %+v", c.Cluster)
	}
	d, w := c.PlatformByName("discord"), c.PlatformByName("web")
	if d.Shards != 4 || d.Placement != PlacementOne || w.Shards != 1 || w.Placement != PlacementAll {
		t.Fatalf("discord %d %s, web %d %s", d.Shards, d.Placement, w.Shards, w.Placement)
	}
	if got := strings.Join(d.Units(), ","); got != "discord#0,discord#1,discord#2,discord#3" {
		t.Fatalf("units = %s", got)
	}
	if got := strings.Join(w.Units(), ","); got != "web" {
		t.Fatalf("units = %s", got)
	}
	for _, s := range []string{fmt.Sprint(c.Store), fmt.Sprintf("%+v", c.Store), fmt.Sprintf("%#v", c.Store)} {
		if strings.Contains(s, "s3cret") {
			t.Fatalf("printed store leaks its dsn: %s", s)
		}
	}
}

func TestStoreDefaultsToBolt(t *testing.T) {
	c := mustParse(t, `platform "web" { plugin = "http" }`, nil)
	if c.Store.Type != "bolt" || c.Cluster != nil || c.Platforms[0].Shards != 1 || c.Platforms[0].Placement != PlacementOne {
		t.Fatalf("defaults: store %v cluster %v platform %+v", c.Store, c.Cluster, c.Platforms[0])
	}
}

func TestClusterErrors(t *testing.T) {
	pg := "store {\n type = \"postgres\"\n dsn = \"x\"\n}\n"
	for _, tc := range []struct{ src, want string }{
		{"store {\n type = \"postgres\"\n}", "Missing dsn"},
		{"store {\n type = \"bolt\"\n dsn = \"x\"\n}", "dsn needs a networked store"},
		{pg + "store {\n type = \"postgres\"\n dsn = \"x\"\n sync = \"100ms\"\n}", "Duplicate store block"},
		{"store {\n type = \"postgres\"\n dsn = \"x\"\n sync = \"100ms\"\n}", "sync is for the bbolt store"},
		{"store {\n type = \"mysql\"\n}", "type"},
		{"cluster {\n name = \"a\"\n}", "Cluster needs a shared store"},
		{pg + "cluster {\n lease_ttl = \"5s\"\n}", "Missing cluster name"},
		{pg + "cluster {\n name = \"a\"\n lease_ttl = \"100ms\"\n}", "lease_ttl too short"},
		{"platform \"d\" {\n shards = 0\n}", "shards"},
		{"platform \"d\" {\n shards = 2\n placement = \"all\"\n}", "Shards run on one host each"},
		{"platform \"d\" {\n placement = \"some\"\n}", "placement"},
	} {
		_, diags := parse([]byte(tc.src), "config.hcl", env(nil))
		if got := FormatDiagnostics(diags); !strings.Contains(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.src, got, tc.want)
		}
	}
}

// "bolt" (the contract's name) and "bbolt" (the engine's) both name the
// embedded store.
func TestStoreBoltAlias(t *testing.T) {
	for _, name := range []string{"bolt", "bbolt"} {
		c := mustParse(t, "store {\n type = \""+name+"\"\n}\n", nil)
		if c.Store.Type != StoreBolt {
			t.Errorf("type %q read as %q", name, c.Store.Type)
		}
	}
}
