package pidlock

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// ErrTimeout is wrapped by the error Stop returns when the lock holder did not release
// the lock in time.
var ErrTimeout = errors.New("timed out")

// ErrLockReplaced is wrapped by errors saying that the lock file on disk is no longer the
// file that was locked: it was deleted or replaced by something outside this package.
var ErrLockReplaced = errors.New("lock file was deleted or replaced")

// ErrHolderUnknown is wrapped by the error Stop returns when a host holds the lock but its
// PID cannot be verified, so nothing is signalled.
var ErrHolderUnknown = errors.New("lock holder could not be identified")

// HeldError is returned by Acquire when a live host holds the lock.
type HeldError struct {
	// PID is the holder's process ID, or 0 when it could not be determined.
	PID int
	// Since is when the holder started: its record's StartedAt, or the process start time
	// when the record could not be read.
	Since time.Time
	// Path is the lock file.
	Path string
	// Record is the holder's verified PID record, or nil.
	Record *Record
}

// Error names the holder: "gateway already running (pid N since TIME, lock PATH)".
func (e *HeldError) Error() string {
	switch {
	case e.PID <= 0:
		return fmt.Sprintf("gateway already running (pid unknown, lock %s)", e.Path)
	case e.Since.IsZero():
		return fmt.Sprintf("gateway already running (pid %d, lock %s)", e.PID, e.Path)
	default:
		return fmt.Sprintf("gateway already running (pid %d since %s, lock %s)",
			e.PID, e.Since.Format(time.RFC3339), e.Path)
	}
}

// DirError is returned by Acquire when the state directory cannot be created.
type DirError struct {
	Path string
	Err  error
}

// Error names the directory and the cause.
func (e *DirError) Error() string {
	return fmt.Sprintf("cannot create state directory %s: %v", e.Path, e.Err)
}

// Unwrap returns the underlying error.
func (e *DirError) Unwrap() error { return e.Err }

// LockError is returned when the lock file cannot be opened, checked or locked for a
// reason other than another host holding it (permissions, read-only filesystem, ...).
type LockError struct {
	// Op is the step that failed: "open", "stat", "lock" or "verify".
	Op   string
	Path string
	Err  error
}

// Error names the lock file, the failed step, the cause and what to do about it.
func (e *LockError) Error() string {
	msg := fmt.Sprintf("cannot %s lock file %s: %v", e.Op, e.Path, e.Err)
	switch {
	case errors.Is(e.Err, unix.EACCES), errors.Is(e.Err, unix.EPERM):
		msg += " (check that the gateway's user owns the state directory)"
	case errors.Is(e.Err, unix.EROFS):
		msg += " (the state directory is on a read-only filesystem; set state_dir to a writable path)"
	case errors.Is(e.Err, ErrLockReplaced):
		msg += " (something keeps deleting or replacing it; stop whatever cleans the state directory)"
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *LockError) Unwrap() error { return e.Err }

// UnsupportedError is returned when the filesystem holding the state directory does not
// support flock (EINVAL, ENOLCK, EOPNOTSUPP: some NFS, FUSE and network mounts).
type UnsupportedError struct {
	Path string
	Err  error
}

// Error names the lock file and says what to do.
func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("cannot lock %s: %v (the filesystem does not support flock; put state_dir on a local filesystem)",
		e.Path, e.Err)
}

// Unwrap returns the underlying error.
func (e *UnsupportedError) Unwrap() error { return e.Err }

// RecordError is returned by Acquire when the PID record cannot be written. The lock is
// released again before it is returned.
type RecordError struct {
	Path string
	Err  error
}

// Error names the PID file and the cause.
func (e *RecordError) Error() string {
	return fmt.Sprintf("cannot write PID file %s: %v", e.Path, e.Err)
}

// Unwrap returns the underlying error.
func (e *RecordError) Unwrap() error { return e.Err }

// lockError classifies a failure of step op on the lock file.
func lockError(path, op string, err error) error {
	if op == "lock" && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOLCK) || errors.Is(err, unix.EOPNOTSUPP)) {
		return &UnsupportedError{Path: path, Err: err}
	}
	return &LockError{Op: op, Path: path, Err: err}
}
