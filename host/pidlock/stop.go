package pidlock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// killWait is the least Stop waits after SIGKILL. SIGKILL cannot be caught, so only a
// process stuck in the kernel (uninterruptible I/O) outlasts it; a short timeout chosen
// for a graceful stop must not turn a kill that is merely slow into an error.
const killWait = 5 * time.Second

// holder is a process seen holding the lock on inode lock, pinned by its start time so
// that a recycled PID never passes for it.
type holder struct {
	pid       int
	startTime uint64
	lock      fileID
}

// Stop sends SIGTERM to the verified lock holder and waits until the lock is released; on
// timeout returns an error that says so (ErrTimeout wrapped) unless force, in which case
// it SIGKILLs and waits again (at least 5 s). Not running → nil.
//
// A PID is signalled only while the process with that PID still has the start time seen
// for the lock holder and still holds the lock, so a stale PID file naming a recycled PID
// or an unrelated process never gets anything signalled.
func Stop(ctx context.Context, dir string, timeout time.Duration, force bool, logger hclog.Logger) error {
	logger = componentLogger(logger)
	st, err := Probe(dir)
	if err != nil {
		return err
	}
	if st.State != Running {
		logger.Debug("gateway is not running", "dir", dir, "state", st.State.String())
		return nil
	}
	h, ok, err := holderOf(st)
	if err != nil || !ok {
		return err
	}
	if h.pid == os.Getpid() {
		return fmt.Errorf("lock %s is held by this process (pid %d): release it instead of stopping", st.LockPath, h.pid)
	}

	logger.Info("stopping gateway", "pid", h.pid, "lock", st.LockPath)
	if sent, err := signalHolder(h, st.LockPath, unix.SIGTERM); err != nil || !sent {
		return err
	}
	gone, err := waitGone(ctx, h, st.LockPath, timeout)
	if err != nil {
		return err
	}
	if gone {
		logger.Info("gateway stopped", "pid", h.pid)
		return nil
	}
	if !force {
		return fmt.Errorf("gateway pid %d still holds %s %s after SIGTERM: %w", h.pid, st.LockPath, timeout, ErrTimeout)
	}

	logger.Warn("gateway did not stop in time; sending SIGKILL", "pid", h.pid, "timeout", timeout)
	if sent, err := signalHolder(h, st.LockPath, unix.SIGKILL); err != nil || !sent {
		return err
	}
	if gone, err = waitGone(ctx, h, st.LockPath, max(timeout, killWait)); err != nil {
		return err
	}
	if !gone {
		return fmt.Errorf("gateway pid %d still holds %s %s after SIGKILL: %w", h.pid, st.LockPath, max(timeout, killWait), ErrTimeout)
	}
	logger.Info("gateway killed", "pid", h.pid)
	return nil
}

// holderOf turns a Running status into a holder. ok is false when the holder is already
// gone.
func holderOf(st Status) (h holder, ok bool, err error) {
	var pathID fileID
	var stt unix.Stat_t
	if err := unix.Stat(st.LockPath, &stt); err == nil {
		pathID = fileID{dev: uint64(stt.Dev), ino: stt.Ino} //nolint:unconvert
	}
	switch {
	case st.Record != nil: // verified by Probe
		h = holder{pid: st.Record.PID, startTime: st.Record.StartTime, lock: pathID}
		if st.Record.LockIno != 0 {
			h.lock = fileID{dev: st.Record.LockDev, ino: st.Record.LockIno}
		}
		return h, true, nil
	case st.PID > 0: // named by the kernel's lock table
		start, err := procStartTime(st.PID)
		if err != nil {
			return holder{}, false, nil
		}
		return holder{pid: st.PID, startTime: start, lock: pathID}, true, nil
	default:
		return holder{}, false, fmt.Errorf("a gateway holds %s but its pid is unknown; not signalling anything: %w",
			st.LockPath, ErrHolderUnknown)
	}
}

// stillHolds reports whether h is alive and still holds its lock. The try-lock is the
// authority when the lock file is still h's inode; /proc/locks must agree when it names
// a holder, and is the only witness left when the lock file was replaced under h.
func stillHolds(h holder, lockPath string) (bool, error) {
	if !procAlive(h.pid, h.startTime) {
		return false, nil
	}
	held, id, err := lockHeld(lockPath)
	if err != nil {
		return false, err
	}
	lockPID := flockHolder(h.lock)
	if id == h.lock {
		return held && (lockPID == 0 || lockPID == h.pid), nil
	}
	return lockPID == h.pid, nil
}

// signalHolder sends sig to h if it still holds the lock. sent is false when h is gone.
//
// The process is pinned with a pidfd before it is verified: a PID recycled before
// pidfd_open fails the start-time check, and one recycled after it cannot be reached
// through the pidfd. Kernels without pidfd (before 5.3) fall back to kill(2) right after
// the check.
func signalHolder(h holder, lockPath string, sig unix.Signal) (sent bool, err error) {
	pidfd, err := unix.PidfdOpen(h.pid, 0)
	switch {
	case err == nil:
		defer unix.Close(pidfd)
	case errors.Is(err, unix.ESRCH):
		return false, nil
	case errors.Is(err, unix.ENOSYS):
		pidfd = -1
	default:
		return false, fmt.Errorf("pidfd_open %d: %w", h.pid, err)
	}
	holds, err := stillHolds(h, lockPath)
	if err != nil || !holds {
		return false, err
	}
	if pidfd >= 0 {
		err = unix.PidfdSendSignal(pidfd, sig, nil, 0)
	} else {
		err = unix.Kill(h.pid, sig)
	}
	if errors.Is(err, unix.ESRCH) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("send %s to gateway pid %d: %w", unix.SignalName(sig), h.pid, err)
	}
	return true, nil
}

// waitGone polls until h no longer holds the lock (true) or timeout passes (false).
func waitGone(ctx context.Context, h holder, lockPath string, timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	interval := 2 * time.Millisecond
	for {
		holds, err := stillHolds(h, lockPath)
		if err != nil {
			return false, err
		}
		if !holds {
			return true, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		t := time.NewTimer(min(interval, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return false, fmt.Errorf("waiting for gateway pid %d to release %s: %w", h.pid, filepath.Base(lockPath), ctx.Err())
		case <-t.C:
		}
		interval = min(interval*2, 50*time.Millisecond)
	}
}
