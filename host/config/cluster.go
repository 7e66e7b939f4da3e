package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Store types. "bbolt" (the engine's own name) is read as StoreBolt.
const (
	StoreBolt     = "bolt"
	StorePostgres = "postgres"
)

// Placements of a platform in a cluster.
const (
	// PlacementOne: one host of the cluster runs the platform (each shard).
	PlacementOne = "one"
	// PlacementAll: every host runs it (an HTTP API behind a load balancer).
	PlacementAll = "all"
)

// DefaultLeaseTTL is a cluster's lease_ttl.
const DefaultLeaseTTL = 10 * time.Second

// MinLeaseTTL is the shortest lease_ttl: a host renews its leases several
// times per TTL and must stop its plugins within half of one.
const MinLeaseTTL = time.Second

// MaxShards bounds a platform's shards.
const MaxShards = 1024

// String prints the store without its DSN, which may hold a password.
func (s Store) String() string {
	if s.DSN == "" {
		return fmt.Sprintf("{type:%s}", s.Type)
	}
	return fmt.Sprintf("{type:%s dsn:%s}", s.Type, SensitivePlaceholder)
}

// GoString is String, for %#v.
func (s Store) GoString() string { return "config.Store" + s.String() }

// Cluster is the cluster block: hosts with the same store and name share
// the platforms whose placement is "one".
type Cluster struct {
	Name     string
	LeaseTTL time.Duration
	// Range is where the block starts.
	Range hcl.Range
}

var clusterSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "name"}, {Name: "lease_ttl"}}}

func (c *Cluster) decode(d *decoder, b *hcl.Block) {
	c.Range = b.DefRange
	c.LeaseTTL = DefaultLeaseTTL
	content, diags := b.Body.Content(clusterSchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	name := d.str(a, "name", &c.Name)
	switch {
	case name == nil:
		d.errorf(b.DefRange, "Missing cluster name",
			"The cluster block needs name: hosts with the same store and cluster name share their platforms, such as name = \"prod\".")
	case !validName.MatchString(c.Name):
		d.errorf(name.Range, "Invalid cluster name",
			"A cluster name may hold letters, digits, \"-\", \"_\" and \".\", and starts with a letter or digit; not %q.", c.Name)
	}
	d.duration(a, "lease_ttl", &c.LeaseTTL)
	if ttl := a["lease_ttl"]; ttl != nil && c.LeaseTTL < MinLeaseTTL {
		d.errorf(ttl.Range, "lease_ttl too short", "lease_ttl must be at least %s, not %s.", MinLeaseTTL, c.LeaseTTL)
	}
}

// checkCluster checks what the store, cluster and platforms say together.
func (c *Config) checkCluster(d *decoder) {
	if c.Cluster != nil && c.Store.Type != StorePostgres {
		d.errorf(c.Cluster.Range, "Cluster needs a shared store",
			"Hosts of a cluster share their sessions and leases through PostgreSQL: add store { type = \"postgres\", dsn = env(\"GATEWAY_DATABASE_URL\") }, or remove the cluster block.")
	}
}

// PlatformOfUnit returns the platform a unit (Units) belongs to.
func PlatformOfUnit(unit string) string {
	name, _, _ := strings.Cut(unit, "#")
	return name
}

// Units returns the platform's units: its name, or NAME#i for each shard
// when it has several.
func (p *Platform) Units() []string {
	if p.Shards <= 1 {
		return []string{p.Name}
	}
	out := make([]string, p.Shards)
	for i := range out {
		out[i] = fmt.Sprintf("%s#%d", p.Name, i)
	}
	return out
}
