package gateway

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/host/cluster"
	"github.com/plughost/gateway/host/config"
	"github.com/plughost/gateway/host/router"
	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/host/store/pgstore"
	"github.com/plughost/gateway/host/supervisor"
	"github.com/plughost/gateway/shared"
	"github.com/plughost/gateway/shared/kit"
)

// openStore opens the store block's store: the bbolt file in state_dir, or
// PostgreSQL (migrated to this build's schema).
func openStore(cfg *config.Config, logger hclog.Logger) (store.Backend, error) {
	logger = logger.Named("agent").Named("store")
	if cfg.Store.Type == config.StorePostgres {
		return pgstore.Open(context.Background(), cfg.Store.DSN, &pgstore.Options{Logger: logger})
	}
	return store.Open(filepath.Join(cfg.Gateway.StateDir, store.FileName), &store.Options{
		Logger: logger, SyncInterval: cfg.Store.SyncInterval})
}

// startCluster joins the cluster block's cluster, if any.
func (h *Host) startCluster(cfg *config.Config) error {
	if cfg.Cluster == nil {
		return nil
	}
	m, err := cluster.Start(context.Background(), cluster.Options{
		DSN: cfg.Store.DSN, Cluster: cfg.Cluster.Name, TTL: cfg.Cluster.LeaseTTL,
		Logger: h.logger.Named("cluster"),
		OnChange: func() {
			if h.applied.Load() {
				h.applyUnits(h.Config())
			}
		},
	})
	if err != nil {
		return err
	}
	h.cluster = m
	return nil
}

// leased reports whether p's units run only where this host holds their lease.
func (h *Host) leased(p *config.Platform) bool {
	return h.cluster != nil && p.Placement == config.PlacementOne && p.Enabled
}

// applyUnits hands the supervisor the units this host runs: every unit of
// a platform that is not leased, and the leased ones it holds. Units are
// applied one change at a time (a reload, a lease won or lost).
func (h *Host) applyUnits(cfg *config.Config) {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	h.applied.Store(true)
	all := h.withPluginAllowed(specs(cfg))
	for i := range all {
		if all[i].ShardCount > 1 {
			all[i].BeforeStart = h.identifyTurn(config.PlatformOfUnit(all[i].Name))
		}
	}
	if h.cluster == nil {
		h.sup.Apply(all)
		return
	}
	var wanted []string
	for _, p := range cfg.Platforms {
		if h.leased(p) {
			wanted = append(wanted, p.Units()...)
		}
	}
	h.cluster.SetUnits(wanted)
	run := make([]supervisor.Spec, 0, len(all))
	for _, s := range all {
		if !slices.Contains(wanted, s.Name) || h.cluster.Held(s.Name) {
			run = append(run, s)
		}
	}
	h.sup.Apply(run)
}

// platformStatuses is every unit's status in config order: the
// supervisor's, or standby for a leased unit another host runs.
func (h *Host) platformStatuses() []supervisor.Status {
	running := h.sup.Statuses()
	if h.cluster == nil {
		return running
	}
	byName := make(map[string]supervisor.Status, len(running))
	for _, st := range running {
		byName[st.Name] = st
	}
	cfg := h.Config()
	out := make([]supervisor.Status, 0, len(running))
	for _, p := range cfg.Platforms {
		for _, unit := range p.Units() {
			if st, ok := byName[unit]; ok {
				out = append(out, st)
				continue
			}
			if h.leased(p) {
				l := h.cluster.Lease(unit)
				// The hint says it in words, as `gateway status` does.
				out = append(out, supervisor.Status{Name: unit, Plugin: p.Plugin, State: supervisor.StateStandby,
					HeldBy: l.Holder, Hint: supervisor.StandbyText(l.Holder)})
			}
		}
	}
	return out
}

// unitSender sends a reply of platform NAME through the unit that runs it
// here: NAME itself, or, for a sharded platform, the shard the conversation
// came in on (so that the inbox records the answer where the message was
// taken), else any shard this host runs (Discord's REST API is not sharded).
type unitSender struct{ h *Host }

var _ router.StreamSender = unitSender{}

// units returns the units to try for a reply in conv of platform, the one
// conv's messages came from first.
func (u unitSender) units(platform, conv string) []string {
	p := u.h.Config().PlatformByName(platform)
	if p == nil || p.Shards <= 1 {
		return []string{platform}
	}
	all := p.Units()
	if v, ok := u.h.convUnits.Load(platform + "\x00" + conv); ok {
		first := v.(string)
		out := []string{first}
		for _, unit := range all {
			if unit != first {
				out = append(out, unit)
			}
		}
		return out
	}
	return all
}

// Send implements router.Sender.
func (u unitSender) Send(ctx context.Context, platform string, r shared.Reply) ([]string, error) {
	var err error
	for _, unit := range u.units(platform, r.ConversationID) {
		var ids []string
		if ids, err = u.h.sup.Send(ctx, unit, r); !notHere(err) {
			return ids, err
		}
	}
	return nil, fmt.Errorf("%s: %w", platform, errUnitErr(err))
}

// Typing implements router.Sender.
func (u unitSender) Typing(ctx context.Context, platform string, conv shared.Conversation) error {
	var err error
	for _, unit := range u.units(platform, conv.ConversationID) {
		if err = u.h.sup.Typing(ctx, unit, conv); !notHere(err) {
			return err
		}
	}
	return errUnitErr(err)
}

// Streams implements router.StreamSender.
func (u unitSender) Streams(platform string) bool {
	for _, unit := range u.units(platform, "") {
		if u.h.sup.Streams(unit) {
			return true
		}
	}
	return false
}

// SendPart implements router.StreamSender.
func (u unitSender) SendPart(ctx context.Context, platform string, part shared.ReplyPart) ([]string, error) {
	var err error
	for _, unit := range u.units(platform, part.Reply.ConversationID) {
		var ids []string
		if ids, err = u.h.sup.SendPart(ctx, unit, part); !notHere(err) {
			return ids, err
		}
	}
	return nil, fmt.Errorf("%s: %w", platform, errUnitErr(err))
}

func notHere(err error) bool {
	return errors.Is(err, supervisor.ErrUnknownPlatform) || errors.Is(err, supervisor.ErrNotConnected)
}

func errUnitErr(err error) error {
	if err == nil {
		return supervisor.ErrNotConnected
	}
	return err
}

// identifyTurn makes a shard's plugin wait for its identify slot before it
// starts: Discord allows one identify per max_concurrency bucket every 5 s,
// across every host running the bot. The host does not know the bot's
// max_concurrency, so it takes it as 1 (one bucket), which every bot's
// limit allows; with a cluster the slots are reserved in PostgreSQL, shared
// by its hosts, else in this host.
func (h *Host) identifyTurn(platform string) func(context.Context) error {
	return func(ctx context.Context) error {
		var wait time.Duration
		if h.cluster != nil {
			var err error
			if wait, err = h.cluster.IdentifySlot(ctx, platform, 0); err != nil {
				return err
			}
		} else {
			h.identifyMu.Lock()
			now := time.Now()
			next := h.identifyNext[platform]
			if next.Before(now) {
				next = now
			}
			wait = next.Sub(now)
			if h.identifyNext == nil {
				h.identifyNext = map[string]time.Time{}
			}
			h.identifyNext[platform] = next.Add(cluster.IdentifyInterval)
			h.identifyMu.Unlock()
		}
		if wait <= 0 {
			return nil
		}
		h.logger.Debug("waiting for the shard's identify slot", "platform", platform, "wait", wait)
		return kit.Sleep(ctx, wait)
	}
}

// clusterInbox is the store's inbox as the supervisor uses it in a
// cluster: a platform with placement = "all" runs on every host at once,
// so the messages it took and has not answered may be another live host's,
// being answered right now; they are not handed on again at start (the
// HTTP platform answers a request on the connection it came in on, which
// only that host has). Placement "one" units hand on what their previous
// holder left unanswered, as after a restart.
type clusterInbox struct {
	store.Backend
	h *Host
}

// Pending implements supervisor.Inbox.
func (c clusterInbox) Pending(unit string) ([][]byte, error) {
	if p := c.h.Config().PlatformByName(config.PlatformOfUnit(unit)); p != nil && p.Placement == config.PlacementAll {
		return nil, nil
	}
	return c.Backend.Pending(unit)
}

// inbox is what the supervisor records inbound messages in.
func (h *Host) inbox(cfg *config.Config) supervisor.Inbox {
	if cfg.Cluster == nil {
		return h.store
	}
	return clusterInbox{Backend: h.store, h: h}
}
