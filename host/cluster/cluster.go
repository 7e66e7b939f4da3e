// Package cluster leases platform units (a platform, or one shard of it)
// to exactly one live host among those sharing a PostgreSQL store and a
// cluster name.
//
// # Leases are rows with an expiry and a fencing epoch, not advisory locks
//
// A session-level advisory lock on a dedicated connection would be the
// shortest code, and hands over at once when a host dies. It was not chosen
// because of what happens when a host is cut off rather than dead: the
// server drops the lock as soon as it notices the connection is gone (a
// reset, a proxy closing it, pg_terminate_backend), which can be well
// before the host itself notices (its next query, or TCP keepalive minutes
// later). In between, two hosts run the same Discord shard and every
// message is answered twice. It also does not survive PgBouncer's
// transaction pooling, where a session is not a connection.
//
// A lease here is a row (cluster, unit) → (holder, epoch, expires). The
// holder renews it every lease_ttl/5 with expires = now() + lease_ttl, the
// server's clock on both sides, so hosts' clocks never matter. Another host
// may take it only once expires has passed (INSERT … ON CONFLICT DO UPDATE
// … WHERE expires < now()), which increments the epoch. The holder, for its
// part, counts on its own monotonic clock from the moment it *sent* a
// renewal that succeeded: if no renewal has succeeded for lease_ttl/2 it
// stops the unit's plugin at once, without waiting for the database to
// answer. That renewal was executed after it was sent, so the row expires
// at least lease_ttl after that moment: the plugin has lease_ttl/2 to stop
// before anyone else may start it. Renewal is fenced by (holder, epoch): a
// host whose lease was taken over can never renew it back.
//
// Turn commits are not fenced by the epoch: sessions are shared by design
// (placement = "all" answers one conversation on several hosts) and
// transcripts stay ordered under concurrent writers by row locks. What a
// lease protects is the platform connection, and a deposed holder has
// stopped it before the lease can change hands.
//
// The price is failover time: after a SIGKILL the lease is taken when it
// expires, within lease_ttl (plus one renewal period), not at once. A host
// that stops cleanly expires its leases as it goes, so a planned restart
// hands over within one renewal period.
//
// # Spreading without flapping
//
// Hosts register in cluster_hosts (a heartbeat each renewal). A host takes
// free units only up to its fair share, ceil(units / live hosts), so no host
// takes everything when several are up; a host holding more than its share
// (hosts joined since) lets one unit go per renewal period, which a host
// under its share takes once it expires. Shares are computed from the same
// table by every host, and a host never gives up a unit to reach less than
// its share, so units do not move back and forth.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options configure a Manager.
type Options struct {
	// DSN is the store's PostgreSQL connection string; the manager keeps
	// its own connections, so that renewals never queue behind turns.
	DSN string
	// Cluster is the cluster's name.
	Cluster string
	// TTL is lease_ttl.
	TTL time.Duration
	// HostName is how other hosts name this one in "standby (held by
	// HOST)"; default hostname:pid.
	HostName string
	Logger   hclog.Logger
	// OnChange is called when the units this host holds change (the host
	// starts or stops their plugins). It must not block for long.
	OnChange func()
}

// Lease is what the manager knows of one unit.
type Lease struct {
	Unit string
	// Held: this host holds it and may run it.
	Held bool
	// Holder names the host holding it ("" when nobody holds it now).
	Holder string
	// Epoch counts the unit's holders: it grows by one at each takeover.
	Epoch int64
}

// Manager holds and renews this host's leases.
type Manager struct {
	opts   Options
	log    hclog.Logger
	pool   *pgxpool.Pool
	id     string
	period time.Duration

	mu       sync.Mutex
	wanted   []string
	held     map[string]*held
	holders  map[string]string // unit → holder name, from the last read
	epochs   map[string]int64
	released map[string]time.Time // unit → when this host let it go
	closed   bool

	wake chan struct{}
	quit chan struct{}
	done chan struct{}
}

type held struct {
	epoch int64
	// until is when this host must have stopped the unit, unless a renewal
	// succeeds first (monotonic clock).
	until time.Time
}

// Start connects and starts the renewal loop. Units are leased once
// SetUnits names them.
func Start(ctx context.Context, opts Options) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.HostName == "" {
		h, _ := os.Hostname()
		opts.HostName = fmt.Sprintf("%s:%d", h, os.Getpid())
	}
	cfg, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		return nil, fmt.Errorf("cluster: the store's dsn is not a valid PostgreSQL connection string")
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster: connecting to PostgreSQL: %w", err)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	m := &Manager{
		opts:     opts,
		log:      opts.Logger,
		pool:     pool,
		id:       opts.HostName + "/" + hex.EncodeToString(rnd[:]),
		period:   opts.TTL / 5,
		held:     map[string]*held{},
		holders:  map[string]string{},
		epochs:   map[string]int64{},
		released: map[string]time.Time{},
		wake:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if err := m.heartbeat(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cluster %q: registering this host: %w", opts.Cluster, err)
	}
	go m.loop()
	return m, nil
}

// HostName is how other hosts name this one.
func (m *Manager) HostName() string { return m.opts.HostName }

// SetUnits sets the units this host may run (placement "one", enabled);
// units held that are no longer named are let go at once. OnChange is not
// called for those: the caller applies the units it named next.
func (m *Manager) SetUnits(units []string) {
	m.mu.Lock()
	m.wanted = slices.Clone(units)
	var dropped []string
	for u := range m.held {
		if !slices.Contains(units, u) {
			delete(m.held, u)
			dropped = append(dropped, u)
		}
	}
	m.mu.Unlock()
	if len(dropped) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), m.period)
		m.expire(ctx, dropped)
		cancel()
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Held reports whether this host holds unit now.
func (m *Manager) Held(unit string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.held[unit]
	return h != nil && time.Now().Before(h.until)
}

// Lease returns what is known of unit.
func (m *Manager) Lease(unit string) Lease {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := Lease{Unit: unit, Holder: m.holders[unit], Epoch: m.epochs[unit]}
	if h := m.held[unit]; h != nil && time.Now().Before(h.until) {
		l.Held, l.Holder, l.Epoch = true, m.opts.HostName, h.epoch
	}
	return l
}

// Close stops renewing, lets every lease expire now (another host takes
// over within one renewal period) and leaves the cluster. Call it once the
// units' plugins have stopped.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	m.mu.Unlock()
	close(m.quit)
	<-m.done
	m.mu.Lock()
	units := make([]string, 0, len(m.held))
	for u := range m.held {
		units = append(units, u)
	}
	m.held = map[string]*held{}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.TTL)
	defer cancel()
	m.expire(ctx, units)
	_, _ = m.pool.Exec(ctx, "DELETE FROM cluster_hosts WHERE cluster = $1 AND host_id = $2", m.opts.Cluster, m.id)
	m.pool.Close()
}

func (m *Manager) changed() {
	if m.opts.OnChange != nil {
		m.opts.OnChange()
	}
}

// expire ends this host's leases of units now.
func (m *Manager) expire(ctx context.Context, units []string) {
	if len(units) == 0 {
		return
	}
	_, err := m.pool.Exec(ctx, `UPDATE cluster_leases SET expires = now()
		WHERE cluster = $1 AND holder = $2 AND unit = ANY($3)`, m.opts.Cluster, m.id, units)
	if err != nil {
		m.log.Warn("could not hand leases over; they expire by themselves within lease_ttl", "units", units, "error", err)
	}
}

func (m *Manager) heartbeat(ctx context.Context) error {
	_, err := m.pool.Exec(ctx, `INSERT INTO cluster_hosts (cluster, host_id, name, seen) VALUES ($1, $2, $3, now())
		ON CONFLICT (cluster, host_id) DO UPDATE SET seen = now()`, m.opts.Cluster, m.id, m.opts.HostName)
	return err
}

func (m *Manager) loop() {
	defer close(m.done)
	t := time.NewTicker(m.period)
	defer t.Stop()
	// The first round waits one period, so that hosts started together
	// see each other before they take their shares.
	first := true
	for {
		// Between rounds too, a lease whose time ran out is given up at
		// once, not at the next round.
		guard := time.NewTimer(time.Until(m.deadline()))
		select {
		case <-m.quit:
			guard.Stop()
			return
		case <-guard.C:
			if m.dropExpired() {
				m.changed()
			}
			continue
		case <-t.C:
		case <-m.wake:
			if first {
				guard.Stop()
				continue
			}
		}
		guard.Stop()
		first = false
		m.round()
	}
}

// deadline is when the earliest held lease must be given up, or a renewal
// period from now.
func (m *Manager) deadline() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := time.Now().Add(2 * m.period)
	for _, h := range m.held {
		if h.until.Before(d) {
			d = h.until
		}
	}
	return d
}

// dropExpired stops holding the leases whose time ran out without a renewal.
func (m *Manager) dropExpired() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	lost := false
	for u, h := range m.held {
		if !now.Before(h.until) {
			m.log.Error("lost the lease: no renewal reached PostgreSQL in time; stopping the platform", "unit", u)
			delete(m.held, u)
			lost = true
		}
	}
	return lost
}

// round renews, reads the cluster, and takes or lets go of units.
func (m *Manager) round() {
	ctx, cancel := context.WithDeadline(context.Background(), m.deadline())
	defer cancel()
	// A guard that does not wait for the database: a host cut off from it
	// stops its units on time even while a query hangs.
	guard := time.AfterFunc(time.Until(m.deadline()), func() {
		if m.dropExpired() {
			m.changed()
		}
	})
	defer guard.Stop()
	changed := m.renew(ctx)
	if m.dropExpired() {
		changed = true
	}
	if ctx.Err() == nil {
		if m.balance(ctx) {
			changed = true
		}
	}
	if changed {
		m.changed()
	}
}

// renew heartbeats and renews every held lease; it reports whether one was
// lost (taken over: the row's holder or epoch changed).
func (m *Manager) renew(ctx context.Context) bool {
	sent := time.Now()
	if err := m.heartbeat(ctx); err != nil {
		m.log.Warn("cannot reach PostgreSQL to renew leases", "error", err)
		return false
	}
	m.mu.Lock()
	units := make([]string, 0, len(m.held))
	epochs := make([]int64, 0, len(m.held))
	for u, h := range m.held {
		units = append(units, u)
		epochs = append(epochs, h.epoch)
	}
	m.mu.Unlock()
	if len(units) == 0 {
		return false
	}
	rows, err := m.pool.Query(ctx, `UPDATE cluster_leases l SET expires = now() + $4::interval
		FROM unnest($3::text[], $5::bigint[]) AS h(unit, epoch)
		WHERE l.cluster = $1 AND l.holder = $2 AND l.unit = h.unit AND l.epoch = h.epoch
		RETURNING l.unit`, m.opts.Cluster, m.id, units, m.opts.TTL, epochs)
	if err != nil {
		m.log.Warn("cannot reach PostgreSQL to renew leases", "error", err)
		return false
	}
	renewed := map[string]bool{}
	for rows.Next() {
		var u string
		if rows.Scan(&u) == nil {
			renewed[u] = true
		}
	}
	rows.Close()
	if rows.Err() != nil {
		m.log.Warn("cannot reach PostgreSQL to renew leases", "error", rows.Err())
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	lost := false
	for _, u := range units {
		h := m.held[u]
		if h == nil {
			continue
		}
		if renewed[u] {
			h.until = sent.Add(m.opts.TTL / 2)
			continue
		}
		m.log.Error("lost the lease to another host; stopping the platform", "unit", u)
		delete(m.held, u)
		lost = true
	}
	return lost
}

// balance reads who holds what, takes free units up to this host's share
// and lets one go when it holds more than its share.
func (m *Manager) balance(ctx context.Context) bool {
	var live int
	if err := m.pool.QueryRow(ctx, `SELECT count(*) FROM cluster_hosts WHERE cluster = $1 AND seen > now() - $2::interval`,
		m.opts.Cluster, m.opts.TTL).Scan(&live); err != nil {
		return false
	}
	rows, err := m.pool.Query(ctx, `SELECT unit, holder_name, epoch, expires > now() FROM cluster_leases WHERE cluster = $1`, m.opts.Cluster)
	if err != nil {
		return false
	}
	holders := map[string]string{}
	epochs := map[string]int64{}
	for rows.Next() {
		var unit, name string
		var epoch int64
		var valid bool
		if rows.Scan(&unit, &name, &epoch, &valid) == nil {
			epochs[unit] = epoch
			if valid {
				holders[unit] = name
			}
		}
	}
	rows.Close()
	if rows.Err() != nil {
		return false
	}
	m.mu.Lock()
	m.holders, m.epochs = holders, epochs
	wanted := slices.Clone(m.wanted)
	nheld := len(m.held)
	var free []string
	for _, u := range wanted {
		if _, mine := m.held[u]; !mine && holders[u] == "" {
			free = append(free, u)
		}
	}
	m.mu.Unlock()
	live = max(live, 1)
	share := int(math.Ceil(float64(len(wanted)) / float64(live)))
	changed := false
	if nheld > share {
		changed = m.letOneGo()
	}
	mrand.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	for _, u := range free {
		if nheld >= share {
			break
		}
		m.mu.Lock()
		recently := time.Since(m.released[u]) < 2*m.opts.TTL
		m.mu.Unlock()
		if recently {
			continue // let a host under its share have it
		}
		if m.take(ctx, u) {
			nheld++
			changed = true
		}
	}
	return changed
}

// take tries to take unit, free or expired.
func (m *Manager) take(ctx context.Context, unit string) bool {
	sent := time.Now()
	var epoch int64
	err := m.pool.QueryRow(ctx, `INSERT INTO cluster_leases (cluster, unit, holder, holder_name, epoch, expires)
		VALUES ($1, $2, $3, $4, 1, now() + $5::interval)
		ON CONFLICT (cluster, unit) DO UPDATE SET holder = excluded.holder, holder_name = excluded.holder_name,
			epoch = cluster_leases.epoch + 1, expires = excluded.expires
		WHERE cluster_leases.expires < now()
		RETURNING epoch`, m.opts.Cluster, unit, m.id, m.opts.HostName, m.opts.TTL).Scan(&epoch)
	if err != nil {
		return false // taken by another host first, or no database
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || !slices.Contains(m.wanted, unit) {
		return false
	}
	m.held[unit] = &held{epoch: epoch, until: sent.Add(m.opts.TTL / 2)}
	m.holders[unit] = m.opts.HostName
	m.epochs[unit] = epoch
	m.log.Info("took the lease; starting the platform", "unit", unit, "epoch", epoch)
	return true
}

// letOneGo stops holding one unit (more hosts joined): it is no longer
// renewed, and a host under its share takes it once it expires.
func (m *Manager) letOneGo() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	units := make([]string, 0, len(m.held))
	for u := range m.held {
		units = append(units, u)
	}
	if len(units) == 0 {
		return false
	}
	slices.Sort(units)
	u := units[len(units)-1]
	delete(m.held, u)
	m.released[u] = time.Now()
	m.log.Info("handing a platform to a host with fewer; stopping it here", "unit", u)
	return true
}

// IdentifyInterval is how far apart a bot's shards of one bucket start:
// Discord allows max_concurrency identifies per 5 s, one per bucket
// (shard % max_concurrency). A slot is taken when the plugin starts, and
// the plugin identifies once it is up, so slots are a second more apart
// than Discord asks: plugin starts that vary by up to a second keep the
// identifies 5 s apart.
const IdentifyInterval = 6 * time.Second

// IdentifySlot reserves the next identify slot of bucket for platform,
// shared by every host of the cluster, and returns how long to wait for it
// (zero when it is now). Slots of one bucket are IdentifyInterval apart.
func (m *Manager) IdentifySlot(ctx context.Context, platform string, bucket int) (time.Duration, error) {
	var wait time.Duration
	err := m.pool.QueryRow(ctx, `INSERT INTO cluster_identify (cluster, platform, bucket, next_at)
		VALUES ($1, $2, $3, now() + $4::interval)
		ON CONFLICT (cluster, platform, bucket) DO UPDATE
			SET next_at = greatest(cluster_identify.next_at, now()) + $4::interval
		RETURNING greatest(next_at - $4::interval - now(), '0'::interval)`,
		m.opts.Cluster, platform, bucket, IdentifyInterval).Scan(&wait)
	if err != nil {
		return 0, fmt.Errorf("reserving an identify slot: %w", err)
	}
	return wait, nil
}
