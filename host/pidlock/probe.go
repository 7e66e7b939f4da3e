package pidlock

import (
	"errors"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/plughost/gateway/host/safepath"
)

// State is what Probe found in a state directory.
type State int

const (
	// NotRunning means no host holds the lock and no PID file is left.
	NotRunning State = iota
	// Stale means no host holds the lock but a PID file was left behind by one that died.
	Stale
	// Running means a host holds the lock.
	Running
)

// String returns "not running", "stale" or "running".
func (s State) String() string {
	switch s {
	case NotRunning:
		return "not running"
	case Stale:
		return "stale"
	case Running:
		return "running"
	}
	return "unknown"
}

// Status is the result of Probe.
type Status struct {
	State State
	// Record is, when Running, the holder's verified record (nil if none verified within
	// the bounded wait); when Stale, the record left behind (nil if unreadable).
	Record *Record
	// PID is the holder's PID when Running, 0 if it could not be determined.
	PID      int
	LockPath string
}

// Probe reports the state of dir without taking the lock for longer than a probe needs:
// when the lock is free it is held for an instant and released at once. Probe never
// creates anything.
func Probe(dir string) (Status, error) {
	lockPath := filepath.Join(dir, LockFileName)
	pidPath := filepath.Join(dir, PIDFileName)
	st := Status{LockPath: lockPath}
	// A record in a folder others can write is not to be believed.
	if err := safepath.CheckDir(dir, "state_dir"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return st, err
	}
	fd, err := openLockFile(lockPath, false)
	if errors.Is(err, unix.ENOENT) {
		return notHeld(st, pidPath, fileID{}), nil
	}
	if err != nil {
		return st, lockError(lockPath, "open", err)
	}
	defer unix.Close(fd)
	id, err := fdID(fd)
	if err != nil {
		return st, lockError(lockPath, "stat", err)
	}
	err = tryLock(fd)
	if errors.Is(err, unix.EWOULDBLOCK) {
		acquired, held := waitForHolder(fd, lockPath, pidPath, id, holderWait)
		if !acquired {
			st.State, st.PID, st.Record = Running, held.PID, held.Record
			return st, nil
		}
		err = nil
	}
	if err != nil {
		return st, lockError(lockPath, "lock", err)
	}
	unix.Flock(fd, unix.LOCK_UN)
	return notHeld(st, pidPath, id), nil
}

// notHeld classifies a directory whose lock file (inode id, zero if missing) is free.
func notHeld(st Status, pidPath string, id fileID) Status {
	rec, err := readRecord(pidPath)
	switch {
	case rec != nil:
		if held := orphanedHolder(rec, id, st.LockPath); held != nil {
			st.State, st.PID, st.Record = Running, held.PID, held.Record
			return st
		}
		st.State, st.Record = Stale, rec
	case errors.Is(err, fs.ErrNotExist):
		st.State = NotRunning
	default:
		st.State = Stale // a PID file is there, if unreadable
	}
	return st
}
