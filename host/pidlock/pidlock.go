package pidlock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/plughost/gateway/host/safepath"
)

// LockFileName is the name of the lock file inside the state directory.
const LockFileName = "gateway.lock"

// PIDFileName is the name of the PID record inside the state directory.
const PIDFileName = "gateway.pid"

// holderWait bounds how long a start that lost the lock waits for the winner's record
// before it names the winner from /proc/locks instead.
const holderWait = time.Second

// maxReplacedRetries bounds how often Acquire starts over because the lock file was
// replaced between opening and locking it.
const maxReplacedRetries = 10

// Stages at which tests can stop or slow down Acquire, named after what has just happened.
const (
	stageBeforeLock    = "before-lock"    // lock file opened, not locked yet
	stageLocked        = "locked"         // lock held, record not written yet
	stageRecordWritten = "record-written" // temporary record written and synced, not renamed yet
	stageRenamed       = "renamed"        // record in place
)

// testHook, when set by tests, is called at each stage.
var testHook func(stage string)

func hook(stage string) {
	if testHook != nil {
		testHook(stage)
	}
}

// Lock is a held lock; Release drops it (and removes the PID file).
//
// The lock lives in a raw file descriptor rather than an *os.File on purpose: an
// *os.File's finalizer would close it, and with it drop the lock, if the caller let the
// Lock become garbage while the process still runs.
type Lock struct {
	mu       sync.Mutex
	fd       int // -1 once released
	id       fileID
	lockPath string
	pidPath  string
	rec      Record
	logger   hclog.Logger
}

func componentLogger(logger hclog.Logger) hclog.Logger {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return logger.Named("pidlock")
}

// Acquire takes the lock on dir (created 0700 if missing) and writes rec as the PID
// record. PID, StartTime, LockDev and LockIno are always filled in for the calling
// process; StartedAt and Argv default to now and os.Args.
//
// When a live host holds the lock it returns a *HeldError naming that host's PID. Other
// failures are a *DirError, *LockError, *UnsupportedError or *RecordError, each naming
// the path involved. A PID file left by a host that died is taken over with a warning.
func Acquire(dir string, rec Record, logger hclog.Logger) (*Lock, error) {
	logger = componentLogger(logger)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, &DirError{Path: dir, Err: err}
	}
	// Another user able to plant links or files in the state dir could make
	// the host (often root) create or overwrite files anywhere.
	if err := safepath.CheckDir(dir, "state_dir"); err != nil {
		return nil, err
	}
	lockPath := filepath.Join(dir, LockFileName)
	pidPath := filepath.Join(dir, PIDFileName)
	deadline := time.Now().Add(holderWait)
	for replaced := 0; ; {
		fd, err := openLockFile(lockPath, true)
		if err != nil {
			return nil, lockError(lockPath, "open", err)
		}
		id, err := fdID(fd)
		if err != nil {
			unix.Close(fd)
			return nil, lockError(lockPath, "stat", err)
		}
		hook(stageBeforeLock)
		err = tryLock(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			acquired, held := waitForHolder(fd, lockPath, pidPath, id, time.Until(deadline))
			if !acquired {
				unix.Close(fd)
				return nil, held
			}
			err = nil
		}
		if err != nil {
			unix.Close(fd)
			return nil, lockError(lockPath, "lock", err)
		}
		// The lock is on the inode we opened. If the name was deleted or replaced since,
		// someone else can lock the new inode and we would both run: start over.
		same, err := pathNames(lockPath, id)
		if err != nil {
			unlockClose(fd)
			return nil, lockError(lockPath, "stat", err)
		}
		if !same {
			unlockClose(fd)
			replaced++
			if replaced > maxReplacedRetries {
				return nil, lockError(lockPath, "lock", ErrLockReplaced)
			}
			logger.Debug("lock file was replaced while it was being locked; retrying", "path", lockPath)
			continue
		}
		return takeOver(dir, fd, id, rec, logger)
	}
}

// takeOver runs with the lock held: it deals with what a previous holder left and writes
// the new record.
func takeOver(dir string, fd int, id fileID, rec Record, logger hclog.Logger) (*Lock, error) {
	lockPath := filepath.Join(dir, LockFileName)
	pidPath := filepath.Join(dir, PIDFileName)
	self := os.Getpid()
	selfStart, err := procStartTime(self)
	if err != nil {
		// Without /proc nobody can verify us before signalling, but the lock still works.
		logger.Debug("cannot read own start time", "error", err)
	}

	prev, err := readRecord(pidPath)
	switch {
	case prev != nil:
		if held := orphanedHolder(prev, id, lockPath); held != nil {
			unlockClose(fd)
			logger.Error("lock file was deleted or replaced while another gateway still holds it; refusing to start a second one",
				"pid", held.PID, "path", lockPath)
			return nil, held
		}
		if prev.PID != self || prev.StartTime != selfStart {
			logger.Warn(fmt.Sprintf("previous gateway pid %d did not shut down cleanly; taking over", prev.PID), "pid", prev.PID)
		}
	case !errors.Is(err, fs.ErrNotExist):
		logger.Warn("previous gateway left an unreadable PID file; taking over", "path", pidPath, "error", err)
	}
	if err := removeStaleTemps(dir); err != nil {
		logger.Warn("cannot remove temporary PID files", "dir", dir, "error", err)
	}

	rec = rec.clone()
	rec.PID, rec.StartTime = self, selfStart
	rec.LockDev, rec.LockIno = id.dev, id.ino
	if rec.StartedAt.IsZero() {
		rec.StartedAt = time.Now()
	}
	if rec.Argv == nil {
		rec.Argv = append([]string(nil), os.Args...)
	}
	hook(stageLocked)
	if err := writeRecord(dir, rec); err != nil {
		unlockClose(fd)
		return nil, &RecordError{Path: pidPath, Err: err}
	}
	hook(stageRenamed)
	logger.Debug("lock acquired", "path", lockPath, "pid", self)
	return &Lock{fd: fd, id: id, lockPath: lockPath, pidPath: pidPath, rec: rec, logger: logger}, nil
}

// Release removes the PID file and drops the lock. The lock file itself stays (see the
// package comment). Calling Release again does nothing.
func (l *Lock) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fd < 0 {
		return nil
	}
	var errs []error
	// Remove the record while still holding the lock: once the lock is free the next host
	// writes its own record, which must not be removed.
	if cur, err := readRecord(l.pidPath); err == nil && cur.PID == l.rec.PID && cur.StartTime == l.rec.StartTime {
		if err := os.Remove(l.pidPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove PID file: %w", err))
		}
	} else if err == nil {
		l.logger.Warn("PID file was overwritten by someone else; leaving it", "path", l.pidPath, "pid", cur.PID)
	}
	if err := unix.Flock(l.fd, unix.LOCK_UN); err != nil {
		errs = append(errs, fmt.Errorf("unlock %s: %w", l.lockPath, err))
	}
	if err := unix.Close(l.fd); err != nil {
		errs = append(errs, fmt.Errorf("close %s: %w", l.lockPath, err))
	}
	l.fd = -1
	l.logger.Debug("lock released", "path", l.lockPath)
	return errors.Join(errs...)
}

// LockPath returns the path of the lock file.
func (l *Lock) LockPath() string { return l.lockPath }

// Record returns the PID record written for this process.
func (l *Lock) Record() Record { return l.rec.clone() }

// Verify checks that the lock file on disk is still the file this Lock holds. When it was
// deleted or replaced it returns an error wrapping ErrLockReplaced: the host keeps its
// lock, but a start that also finds the PID file gone could not see it. Hosts call it
// from their health checks to report that loudly.
func (l *Lock) Verify() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fd < 0 {
		return fmt.Errorf("lock %s was released", l.lockPath)
	}
	same, err := pathNames(l.lockPath, l.id)
	if err != nil {
		return &LockError{Op: "stat", Path: l.lockPath, Err: err}
	}
	if !same {
		return &LockError{Op: "verify", Path: l.lockPath, Err: ErrLockReplaced}
	}
	return nil
}

// openLockFile opens the lock file close-on-exec, so that plugin processes never inherit
// (and so never keep holding) the lock. Probes open without creating; they prefer
// read-write because flock emulated over NFS needs it, and fall back to read-only.
func openLockFile(path string, create bool) (int, error) {
	flags := unix.O_RDWR | unix.O_CLOEXEC | unix.O_NOFOLLOW
	if create {
		flags |= unix.O_CREAT
	}
	for {
		fd, err := unix.Open(path, flags, 0o600)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case !create && (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EROFS)) && flags&unix.O_RDWR != 0:
			flags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW
			continue
		}
		return fd, err
	}
}

// tryLock takes the exclusive lock without blocking; unix.EWOULDBLOCK means it is held.
func tryLock(fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func unlockClose(fd int) {
	unix.Flock(fd, unix.LOCK_UN)
	unix.Close(fd)
}
