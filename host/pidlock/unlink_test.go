package pidlock

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLockFileReplacedUnderHolder deletes, then replaces, gateway.lock while a host holds
// it. A new Acquire then locks a fresh inode nobody else holds, so the lock alone cannot
// see the running host; without the check against the inode recorded in the PID file
// (still locked by that host according to /proc/locks) two hosts would run. It must
// refuse and name the running host instead.
func TestLockFileReplacedUnderHolder(t *testing.T) {
	dir := t.TempDir()
	lockPath := filepath.Join(dir, LockFileName)
	host := startHelper(t, "acquire", helperEnv(dir))
	host.waitLine(t, "HELD", 20*time.Second)

	replace := map[string]func() error{
		"deleted": func() error { return os.Remove(lockPath) },
		"replaced": func() error {
			tmp := filepath.Join(dir, "new.lock")
			if err := os.WriteFile(tmp, nil, 0o600); err != nil {
				return err
			}
			return os.Rename(tmp, lockPath)
		},
	}
	for _, how := range []string{"deleted", "replaced"} {
		if err := replace[how](); err != nil {
			t.Fatal(err)
		}
		lock, err := Acquire(dir, Record{}, nil)
		if err == nil {
			lock.Release()
			t.Fatalf("lock file %s under a live holder: Acquire succeeded, two hosts would run", how)
		}
		held, ok := errors.AsType[*HeldError](err)
		if !ok || held.PID != host.pid() {
			t.Fatalf("lock file %s: Acquire = %v, want a HeldError naming %d", how, err, host.pid())
		}
		st, err := Probe(dir)
		if err != nil || st.State != Running || st.PID != host.pid() {
			t.Fatalf("lock file %s: Probe = %+v, %v, want Running pid %d", how, st, err, host.pid())
		}
	}

	// Once the host is gone the new lock file is taken normally.
	host.stop(t)
	lock, err := Acquire(dir, Record{}, nil)
	if err != nil {
		t.Fatalf("Acquire after the holder stopped: %v", err)
	}
	if err := lock.Verify(); err != nil {
		t.Fatal(err)
	}
	if err := lock.Release(); err != nil {
		t.Fatal(err)
	}
}

// TestLockFileSwappedWhileLocking swaps gateway.lock between Acquire's open and its flock,
// the classic unlink race: Acquire then holds a lock on an inode that no longer has the
// name, which protects nothing. The fstat/stat check must notice and start over on the
// new inode.
func TestLockFileSwappedWhileLocking(t *testing.T) {
	t.Run("new inode free", func(t *testing.T) {
		dir := t.TempDir()
		lockPath := filepath.Join(dir, LockFileName)
		opens := 0
		setHook(t, func(stage string) {
			if stage != stageBeforeLock {
				return
			}
			opens++
			if opens == 1 {
				os.Remove(lockPath)
				os.WriteFile(lockPath, nil, 0o600)
			}
		})
		lock, err := Acquire(dir, Record{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Release()
		if opens != 2 {
			t.Fatalf("lock file opened %d times, want 2 (one retry after the swap)", opens)
		}
		if err := lock.Verify(); err != nil {
			t.Fatalf("Acquire kept the lock on the swapped-out inode: %v", err)
		}
	})

	t.Run("new inode taken by another host", func(t *testing.T) {
		// Between our open and our flock, the file is unlinked and another host creates
		// and locks a new one. Our flock on the old inode succeeds; without the check we
		// would run next to it.
		dir := t.TempDir()
		lockPath := filepath.Join(dir, LockFileName)
		var other *Lock
		setHook(t, func(stage string) {
			if stage != stageBeforeLock || other != nil {
				return
			}
			os.Remove(lockPath)
			testHook = nil // the other host's Acquire runs undisturbed
			var err error
			if other, err = Acquire(dir, Record{}, nil); err != nil {
				t.Errorf("other host: %v", err)
			}
		})
		lock, err := Acquire(dir, Record{}, nil)
		if other == nil {
			t.Fatal("hook did not run")
		}
		defer other.Release()
		if err == nil {
			lock.Release()
			t.Fatal("Acquire succeeded on the unlinked inode while another host holds the new one")
		}
		if held, ok := errors.AsType[*HeldError](err); !ok || held.PID != os.Getpid() {
			t.Fatalf("Acquire = %v, want a HeldError naming the other host (pid %d)", err, os.Getpid())
		}
		if err := other.Verify(); err != nil {
			t.Fatalf("the other host lost its lock: %v", err)
		}
	})
}

// setHook installs a test hook for the duration of the test.
func setHook(t *testing.T, h func(stage string)) {
	t.Helper()
	testHook = h
	t.Cleanup(func() { testHook = nil })
}
