package gateway

import (
	"context"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/host/supervisor"
)

// notifier speaks systemd's notify protocol. Outside systemd (no
// NOTIFY_SOCKET) every call is a no-op.
type notifier struct {
	logger hclog.Logger
}

func (n notifier) send(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.logger.Warn("sd_notify failed", "state", state, "error", err)
	}
}

func (n notifier) ready()    { n.send(daemon.SdNotifyReady) }
func (n notifier) stopping() { n.send(daemon.SdNotifyStopping) }

// reloading tells systemd a reload began; MONOTONIC_USEC lets
// Type=notify-reload units match it to their reload request.
func (n notifier) reloading() {
	n.send(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec())
}

// watchdogInterval is how often to send WATCHDOG=1: half of WatchdogSec,
// or 0 when systemd does not watch this process.
func watchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0
	}
	return d / 2
}

// settled reports whether every enabled platform has started or failed for
// good, which is when READY=1 is sent.
func settled(statuses []supervisor.Status) bool {
	for _, st := range statuses {
		switch st.State {
		case supervisor.StateRunning, supervisor.StateFailed, supervisor.StateDisabled,
			supervisor.StateMissing, supervisor.StateDegraded:
		default:
			return false
		}
	}
	return true
}

// readyTimeout bounds how long READY=1 waits for platforms to settle: a
// platform stuck in its backoff loop must not keep the whole unit
// "activating".
const readyTimeout = 30 * time.Second

// waitSettled waits until every platform settled, ctx ends, or readyTimeout.
func (h *Host) waitSettled(ctx context.Context) {
	deadline := time.Now().Add(readyTimeout)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !settled(h.sup.Statuses()) {
		if time.Now().After(deadline) {
			h.logger.Warn("not every platform has started yet; reporting ready anyway", "waited", readyTimeout)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// alive checks that the host's loops answer: it reads the status, which
// takes the supervisor's, every platform's and the agent cache's locks. A
// deadlock anywhere there stops the watchdog pings, and systemd restarts us.
func (h *Host) alive(within time.Duration) bool {
	done := make(chan struct{})
	go func() {
		_ = h.Status()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(within):
		return false
	}
}
