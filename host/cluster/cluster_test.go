package cluster

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plughost/gateway/host/store/pgstore"
	"github.com/plughost/gateway/host/store/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

const ttl = time.Second

// newCluster returns a migrated database's DSN.
func newCluster(t *testing.T) string {
	dsn := pg.NewDatabase(t)
	s, err := pgstore.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	return dsn
}

func start(t *testing.T, dsn, name string, units ...string) *Manager {
	t.Helper()
	var changes atomic.Int64
	m, err := Start(context.Background(), Options{DSN: dsn, Cluster: "c", TTL: ttl, HostName: name,
		OnChange: func() { changes.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	m.SetUnits(units)
	return m
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func holders(ms []*Manager, unit string) (n int, who *Manager) {
	for _, m := range ms {
		if m.Held(unit) {
			n++
			who = m
		}
	}
	return n, who
}

func TestExactlyOneHolderAndTakeoverAfterCrash(t *testing.T) {
	dsn := newCluster(t)
	ms := []*Manager{start(t, dsn, "a", "u"), start(t, dsn, "b", "u"), start(t, dsn, "c", "u")}
	waitFor(t, 5*ttl, "one holder", func() bool { n, _ := holders(ms, "u"); return n == 1 })
	_, owner := holders(ms, "u")
	// Others see who holds it.
	for _, m := range ms {
		waitFor(t, 3*ttl, "holder known", func() bool { return m.Lease("u").Holder == owner.HostName() })
	}
	// Held stays with one host over several periods (no flapping).
	for range 10 {
		if n, who := holders(ms, "u"); n != 1 || who != owner {
			t.Fatalf("%d holders, %v; want only %s", n, who, owner.HostName())
		}
		time.Sleep(ttl / 5)
	}
	epoch := owner.Lease("u").Epoch
	owner.crash()
	var rest []*Manager
	for _, m := range ms {
		if m != owner {
			rest = append(rest, m)
		}
	}
	began := time.Now()
	waitFor(t, 3*ttl, "takeover", func() bool { n, _ := holders(rest, "u"); return n == 1 })
	_, next := holders(rest, "u")
	if l := next.Lease("u"); l.Epoch != epoch+1 {
		t.Fatalf("epoch after takeover = %d, want %d", l.Epoch, epoch+1)
	}
	t.Logf("taken over %s after the holder crashed (lease_ttl %s)", time.Since(began).Round(time.Millisecond), ttl)
}

func TestUnitsSpreadAcrossHosts(t *testing.T) {
	dsn := newCluster(t)
	units := []string{"d#0", "d#1", "d#2", "d#3"}
	a := start(t, dsn, "a", units...)
	waitFor(t, 5*ttl, "a holds all while alone", func() bool {
		for _, u := range units {
			if !a.Held(u) {
				return false
			}
		}
		return true
	})
	b := start(t, dsn, "b", units...)
	count := func(m *Manager) (n int) {
		for _, u := range units {
			if m.Held(u) {
				n++
			}
		}
		return n
	}
	waitFor(t, 15*ttl, "two each", func() bool { return count(a) == 2 && count(b) == 2 })
	for _, u := range units {
		if a.Held(u) && b.Held(u) {
			t.Fatalf("%s held twice", u)
		}
	}
}

func TestCloseHandsOverAtOnce(t *testing.T) {
	dsn := newCluster(t)
	a := start(t, dsn, "a", "u")
	waitFor(t, 5*ttl, "a holds", func() bool { return a.Held("u") })
	b := start(t, dsn, "b", "u")
	a.Close()
	began := time.Now()
	waitFor(t, 2*ttl, "b takes over", func() bool { return b.Held("u") })
	t.Logf("handed over in %s", time.Since(began).Round(time.Millisecond))
	b.SetUnits(nil)
	if b.Held("u") {
		t.Fatal("a unit no longer named is still held")
	}
}
