package pidlock

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// waitForHolder runs when the lock on fd (inode id) is held by someone else. It names the
// holder: it waits up to wait for a PID record whose process verifies, because a winner
// that has just taken the lock may not have written its record yet, and then falls back
// to the PID the kernel lists for the lock in /proc/locks. It keeps retrying the lock
// meanwhile: the holder may have just died, or been a probe holding it for an instant; in
// that case it returns acquired with the lock held on fd.
func waitForHolder(fd int, lockPath, pidPath string, id fileID, wait time.Duration) (acquired bool, held *HeldError) {
	deadline := time.Now().Add(wait)
	interval := time.Millisecond
	lockPID := 0
	for {
		if tryLock(fd) == nil {
			return true, nil
		}
		lockPID = flockHolder(id)
		rec, _ := readRecord(pidPath)
		// A holder that is already exiting (just SIGKILLed, or stopped by -replace)
		// releases the lock in a moment: wait for it rather than refuse to start.
		if rec != nil && recordHolds(rec, id, lockPID) && !procExiting(rec.PID) {
			return false, &HeldError{PID: rec.PID, Since: rec.StartedAt, Path: lockPath, Record: rec}
		}
		if !time.Now().Before(deadline) {
			break
		}
		time.Sleep(min(interval, time.Until(deadline)))
		interval = min(interval*2, 20*time.Millisecond)
	}
	if lockPID > 0 {
		return false, &HeldError{PID: lockPID, Since: procStartWall(lockPID), Path: lockPath}
	}
	return false, &HeldError{Path: lockPath}
}

// recordHolds reports whether rec describes the holder of the (held) lock on id: its
// process is alive with the recorded start time, it locked this inode, and the kernel,
// when it says who holds the lock, agrees.
func recordHolds(rec *Record, id fileID, lockPID int) bool {
	if !procAlive(rec.PID, rec.StartTime) {
		return false
	}
	if rec.LockIno != 0 && (rec.LockDev != id.dev || rec.LockIno != id.ino) {
		return false
	}
	return lockPID == 0 || lockPID == rec.PID
}

// orphanedHolder checks, for a record found while we hold (or could take) the lock on id,
// whether its process still holds a lock on a different inode: the lock file was deleted
// or replaced under a live host. Only positive evidence from the kernel counts, so a
// record naming some unrelated live process never blocks a start.
func orphanedHolder(rec *Record, id fileID, lockPath string) *HeldError {
	if rec.LockIno == 0 || (rec.LockDev == id.dev && rec.LockIno == id.ino) {
		return nil
	}
	if !procAlive(rec.PID, rec.StartTime) {
		return nil
	}
	old := fileID{dev: rec.LockDev, ino: rec.LockIno}
	if flockHolder(old) != rec.PID {
		return nil
	}
	return &HeldError{PID: rec.PID, Since: rec.StartedAt, Path: lockPath, Record: rec}
}

// lockHeld reports whether someone holds the lock on path, by trying it for an instant,
// and the inode it names.
func lockHeld(path string) (held bool, id fileID, err error) {
	fd, err := openLockFile(path, false)
	if errors.Is(err, unix.ENOENT) {
		return false, fileID{}, nil
	}
	if err != nil {
		return false, fileID{}, lockError(path, "open", err)
	}
	defer unix.Close(fd)
	if id, err = fdID(fd); err != nil {
		return false, fileID{}, lockError(path, "stat", err)
	}
	switch err := tryLock(fd); {
	case err == nil:
		unix.Flock(fd, unix.LOCK_UN)
		return false, id, nil
	case errors.Is(err, unix.EWOULDBLOCK):
		return true, id, nil
	default:
		return false, id, lockError(path, "lock", err)
	}
}
