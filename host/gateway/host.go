// Package gateway wires the host together: PID lock, session store and
// agents, router, plugin supervisor and admin endpoint, with graceful
// shutdown and reload.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/plughost/gateway/host/access"
	"github.com/plughost/gateway/host/admin"
	"github.com/plughost/gateway/host/agent"
	"github.com/plughost/gateway/host/cluster"
	"github.com/plughost/gateway/host/config"
	"github.com/plughost/gateway/host/pidlock"
	"github.com/plughost/gateway/host/router"
	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/host/supervisor"
	"github.com/plughost/gateway/host/tools"
	"github.com/plughost/gateway/host/version"
	"github.com/plughost/gateway/shared"
)

// Options configure Run.
type Options struct {
	// Config is the loaded configuration.
	Config *config.Config
	// Logger is the host's root logger; Run changes its level on reload.
	Logger hclog.Logger
	// Reload loads the configuration again, for SIGHUP.
	Reload func() (*config.Config, error)
	// Argv is recorded in the PID record.
	Argv []string
	// DroppedLogs, if set, counts the log lines dropped because the log
	// output was stuck (gateway_log_lines_dropped_total).
	DroppedLogs func() uint64
}

// Host is a running gateway.
type Host struct {
	logger  hclog.Logger
	lock    *pidlock.Lock
	store   store.Backend
	cluster *cluster.Manager
	access  *access.Gate
	agents  *agent.Service
	tools   *tools.Manager
	router  *router.Router
	sup     *supervisor.Supervisor
	admin   *admin.Server
	metrics *metrics
	started time.Time
	reload  func() (*config.Config, error)
	// stopWatch stops watching plugin_dir.
	stopWatch context.CancelFunc
	// plugins describes plugin binaries for reload's schema check.
	plugins *describer

	// applyMu serialises handing units to the supervisor; applied is set
	// once the platforms were first applied (lease changes wait for it).
	applyMu sync.Mutex
	applied atomic.Bool
	// convUnits maps platform ‖ 0 ‖ conversation to the shard (unit) the
	// conversation's messages come from, for sharded platforms.
	convUnits sync.Map
	// identifyNext is each sharded platform's next identify slot, without
	// a cluster.
	identifyMu   sync.Mutex
	identifyNext map[string]time.Time

	mu        sync.Mutex
	cfg       *config.Config
	reloadErr string
}

// Run runs the gateway until SIGTERM or SIGINT (or ctx ends), reloading on
// SIGHUP. A second SIGTERM/SIGINT during shutdown stops at once.
func Run(ctx context.Context, opts Options) error {
	h, err := Start(opts)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	notify := notifier{logger: h.logger}
	readyCtx, cancelReady := context.WithCancel(ctx)
	defer cancelReady()
	go func() {
		h.waitSettled(readyCtx)
		if readyCtx.Err() == nil {
			notify.ready()
		}
	}()
	// The watchdog is pinged from this loop, after a liveness check, never
	// from a free-running timer: if the host wedges, systemd notices.
	var watchdog <-chan time.Time
	if every := watchdogInterval(); every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		watchdog = t.C
		h.logger.Debug("systemd watchdog enabled", "interval", every)
	}
	// Reloads run aside, one at a time (SIGHUPs meanwhile coalesce into one
	// more): describing plugin binaries takes seconds, and this loop must
	// keep answering signals.
	reloadCtx, cancelReloads := context.WithCancel(context.Background())
	defer cancelReloads()
	reloadReq := make(chan struct{}, 1)
	reloadsDone := make(chan struct{})
	go func() {
		defer close(reloadsDone)
		for {
			select {
			case <-reloadCtx.Done():
				return
			case <-reloadReq:
			}
			notify.reloading()
			if err := h.reloadCtx(reloadCtx); err != nil {
				h.logger.Error("reload failed; still running the previous config", "error", err)
			}
			notify.ready()
		}
	}()
	// stopReloads cancels a reload in progress and waits for it a little:
	// one that is applying ends within milliseconds; one still describing a
	// plugin binary (a handshake ignores cancellation) gives up before it
	// applies anything, so shutdown need not wait for it.
	stopReloads := func() {
		cancelReloads()
		select {
		case <-reloadsDone:
		case <-time.After(reloadStopWait):
			h.logger.Warn("a reload is still describing plugins; shutting down without it")
		}
	}
	for {
		select {
		case <-watchdog:
			if h.alive(time.Second) {
				notify.send("WATCHDOG=1")
			} else {
				h.logger.Error("host loops did not answer; withholding the watchdog ping")
			}
		case <-ctx.Done():
			notify.stopping()
			stopReloads()
			return h.Shutdown(context.Background())
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				select {
				case reloadReq <- struct{}{}:
				default: // one is pending already: it reads the file as it is then
				}
				continue
			}
			cancelReady()
			notify.stopping()
			h.logger.Info("shutting down", "signal", sig.String())
			return h.shutdownBounded(sigs, stopReloads)
		}
	}
}

// reloadStopWait bounds how long shutdown waits for a cancelled reload.
const reloadStopWait = 2 * time.Second

// shutdownSlack is how much longer than shutdown_timeout a shutdown may
// take in all (stopping plugins, closing agents, flushing the store) before
// Run gives up on it and returns anyway.
const shutdownSlack = 8 * time.Second

// ErrForcedStop is returned by Run when a second SIGTERM/SIGINT arrived
// during shutdown, or the shutdown overran its bound: the process should
// exit now. Plugins die with the host (Pdeathsig); the store is crash-safe.
var ErrForcedStop = errors.New("stopped before the shutdown finished")

// shutdownBounded runs Shutdown aside and returns when it is done, when a
// second SIGTERM/SIGINT arrives, or when shutdown_timeout + shutdownSlack
// has passed, whichever comes first: stopping is always bounded.
func (h *Host) shutdownBounded(sigs chan os.Signal, stopReloads func()) error {
	done := make(chan error, 1)
	go func() {
		stopReloads() // a reload in progress ends first (it is cancelled)
		done <- h.Shutdown(context.Background())
	}()
	bound := h.Config().Gateway.ShutdownTimeout + shutdownSlack
	hard := time.NewTimer(bound)
	defer hard.Stop()
	for {
		select {
		case err := <-done:
			return err
		case s := <-sigs:
			if s == syscall.SIGHUP {
				continue
			}
			h.logger.Warn("second signal: stopping now", "signal", s.String())
			return fmt.Errorf("%w: second signal (%s)", ErrForcedStop, s)
		case <-hard.C:
			h.logger.Error("shutdown did not finish in time; stopping now", "bound", bound)
			return fmt.Errorf("%w: shutdown took longer than shutdown_timeout + %s", ErrForcedStop, shutdownSlack)
		}
	}
}

// Start takes the PID lock, then starts everything else. Whatever it
// started, a failing Start stops.
func Start(opts Options) (_ *Host, err error) {
	cfg := opts.Config
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	h := &Host{logger: logger, cfg: cfg, started: time.Now(), reload: opts.Reload}
	h.plugins = newDescriber(func(ctx context.Context, b supervisor.Binary) (shared.Description, error) {
		return supervisor.Inspect(ctx, b, logger.Named("describe"))
	})
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()

	// The lock comes before anything else: no second host may touch the
	// store, the admin address or the plugins.
	h.lock, err = pidlock.Acquire(cfg.Gateway.StateDir, pidlock.Record{
		Argv: opts.Argv, Config: cfg.Path, Admin: cfg.Gateway.Admin,
	}, logger)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _ = h.lock.Release() })

	// The lock created the state directory.
	h.store, err = openStore(cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("opening the session store: %w", err)
	}
	cleanup = append(cleanup, func() { _ = h.store.Close() })

	h.access, err = newGate(h, h.store, logger)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, h.access.Close)

	// MCP servers start now and come up in the background: an agent whose
	// server is not up yet is told its tools are unavailable.
	h.tools = tools.New(logger)
	h.tools.Apply(mcpConfigs(cfg))
	cleanup = append(cleanup, h.tools.Close)

	h.agents, err = agent.New(agentConfig(cfg), h.store, agent.Options{Logger: logger.Named("agent"), OnUsage: h.recordUsage, Tools: toolSource{h.tools},
		SharedStore: cfg.Store.Type == config.StorePostgres})
	if err != nil {
		return nil, fmt.Errorf("starting the agent layer: %w", err)
	}
	cleanup = append(cleanup, func() { _ = h.agents.Close(context.Background()) })

	reg := prometheus.NewRegistry()
	h.metrics = newMetrics(reg, h)
	if opts.DroppedLogs != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gateway_log_lines_dropped_total",
			Help: "Log lines dropped because the log output did not keep up.",
		}, func() float64 { return float64(opts.DroppedLogs()) }))
	}
	for _, c := range h.agents.Collectors() {
		reg.MustRegister(c)
	}
	reg.MustRegister(h.access.Collectors()...)

	// The supervisor hands messages to the router, which answers through
	// the supervisor: messages flow only once platforms are applied below.
	h.sup = supervisor.New(supervisor.Options{
		Logger:        logger.Named("supervisor"),
		PluginLogger:  logger.ResetNamed("plugin"),
		Handler:       h.handleMessage,
		Transcripts:   h.transcript,
		Inbox:         h.inbox(cfg),
		OnStateChange: h.metrics.stateChanged,
		LogLevel:      cfg.Gateway.LogLevel,
	})
	h.router = router.New(router.Options{
		Agents:        agentsView{h.agents},
		Sender:        unitSender{h},
		Logger:        logger.Named("router"),
		MaxConcurrent: cfg.Agent.MaxConcurrent,
		QueueLimit:    cfg.Agent.QueueLimit,
		ReplyTimeout:  cfg.Agent.ReplyTimeout,
		Observe:       h.metrics.observeReply,
	})
	cleanup = append(cleanup, h.sup.Stop)

	// The cluster is joined before anything reads h.cluster (the admin
	// endpoint); leases it takes are applied once applyPlatforms has run.
	if err := h.startCluster(cfg); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() {
		if h.cluster != nil {
			h.cluster.Close()
		}
	})

	h.admin, err = admin.Listen(admin.Options{
		Addr:     cfg.Gateway.Admin,
		Status:   func() any { return h.Status() },
		Ready:    h.Ready,
		Gatherer: reg,
		Routes:   h.access.Routes,
		Logger:   logger.Named("admin"),

		MaxConnections: cfg.Gateway.AdminMaxConnections,
		AllowedHosts:   cfg.Gateway.AllowedHosts,
		AllowedOrigins: cfg.Gateway.AllowedOrigins,
	})
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _ = h.admin.Close(context.Background()) })

	watchCtx, stopWatch := context.WithCancel(context.Background())
	h.stopWatch = stopWatch
	if err := h.sup.WatchDir(watchCtx, cfg.Gateway.PluginDir); err != nil {
		logger.Warn("not watching plugin_dir for new binaries; missing ones are still polled for", "dir", cfg.Gateway.PluginDir, "error", err)
	}
	cleanup = append(cleanup, stopWatch)

	h.applyPlatforms(cfg)
	logger.Info("gateway started", "pid", os.Getpid(), "version", version.Version,
		"config", cfg.Path, "admin", h.admin.Addr().String(), "platforms", len(cfg.Platforms))
	return h, nil
}

var (
	_ supervisor.Inbox    = store.Backend(nil)
	_ router.StreamSender = (*supervisor.Supervisor)(nil)
)

func (h *Host) handleMessage(platform string, m *shared.Message) {
	h.metrics.messageIn(platform)
	// Ids become store keys and log fields: one the plugin did not bound
	// is refused here, whatever plugin sent it.
	if err := m.CheckIDs(); err != nil {
		h.logger.Warn("refused a message whose ids are unusable", "platform", platform,
			"id", shared.LogValue(m.ID), "reason", err)
		h.sup.Dismiss(platform, m)
		return
	}
	unit := platform
	// A shard's messages are its platform's; its replies go back through
	// it (unitSender).
	if strings.Contains(unit, "#") {
		platform = config.PlatformOfUnit(unit)
		h.convUnits.Store(platform+"\x00"+m.ConversationID, unit)
	}
	if !h.access.Admit(platform, m) {
		// Refused (or answered with a pairing code): never to be handed
		// on again after a restart.
		h.sup.Dismiss(unit, m)
		return
	}
	h.router.Handle(platform, m)
}

// applyPlatforms points the router and supervisor at cfg's platforms.
func (h *Host) applyPlatforms(cfg *config.Config) {
	for _, p := range cfg.Platforms {
		h.router.SetScope(p.Name, router.Scope(p.SessionScope))
	}
	h.applyAccess(cfg)
	h.applyUnits(cfg)
}

// Config returns the configuration in force.
func (h *Host) Config() *config.Config {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cfg
}

// Shutdown stops taking messages, lets replies in progress finish until
// the shutdown timeout (or ctx) ends, stops the plugins, closes every agent,
// flushes the store and releases the lock.
func (h *Host) Shutdown(ctx context.Context) error {
	cfg := h.Config()
	graceCtx, cancel := context.WithTimeout(ctx, cfg.Gateway.ShutdownTimeout)
	defer cancel()
	h.router.Close(graceCtx)
	h.access.Close()
	h.stopWatch()
	h.sup.Stop()
	if h.cluster != nil {
		// The plugins are stopped: hand the leases over now.
		h.cluster.Close()
	}
	var errs []error
	closeCtx, cancelClose := context.WithTimeout(ctx, 10*time.Second)
	defer cancelClose()
	if err := h.agents.Close(closeCtx); err != nil {
		errs = append(errs, fmt.Errorf("closing agents: %w", err))
	}
	h.tools.Close()
	if err := h.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing the session store: %w", err))
	}
	if err := h.admin.Close(closeCtx); err != nil {
		errs = append(errs, fmt.Errorf("closing the admin endpoint: %w", err))
	}
	if err := h.lock.Release(); err != nil {
		errs = append(errs, fmt.Errorf("releasing the lock: %w", err))
	}
	h.logger.Info("gateway stopped")
	return errors.Join(errs...)
}
