package pidlock

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAcquireErrors checks that failures other than "held" are classified by type and
// name the path involved.
func TestAcquireErrors(t *testing.T) {
	t.Run("state dir under a regular file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, dir := range []string{filepath.Join(file, "state"), file} {
			_, err := Acquire(dir, Record{}, nil)
			de, ok := errors.AsType[*DirError](err)
			if !ok || de.Path != dir || !errors.Is(err, unix.ENOTDIR) {
				t.Fatalf("Acquire(%s) = %v, want a DirError for ENOTDIR", dir, err)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Fatalf("error does not name %s: %v", dir, err)
			}
			if _, err := Probe(dir); err == nil {
				t.Fatalf("Probe(%s) succeeded on a path under a file", dir)
			}
		}
	})

	t.Run("state dir under a read-only directory", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root bypasses directory permissions")
		}
		parent := filepath.Join(t.TempDir(), "ro")
		if err := os.Mkdir(parent, 0o500); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(parent, "state")
		_, err := Acquire(dir, Record{}, nil)
		if _, ok := errors.AsType[*DirError](err); !ok || !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("Acquire = %v, want a DirError for a permission error naming %s", err, dir)
		}
	})

	t.Run("lock file is a directory", func(t *testing.T) {
		dir := t.TempDir()
		lockPath := filepath.Join(dir, LockFileName)
		if err := os.Mkdir(lockPath, 0o700); err != nil {
			t.Fatal(err)
		}
		_, err := Acquire(dir, Record{}, nil)
		le, ok := errors.AsType[*LockError](err)
		if !ok || le.Op != "open" || !errors.Is(err, unix.EISDIR) || !strings.Contains(err.Error(), lockPath) {
			t.Fatalf("Acquire = %v, want a LockError(open, EISDIR) naming %s", err, lockPath)
		}
	})

	t.Run("PID file cannot be written", func(t *testing.T) {
		// A non-empty directory where the PID file goes makes the rename fail. Acquire must
		// say so and release the lock it took.
		dir := t.TempDir()
		pidPath := filepath.Join(dir, PIDFileName)
		if err := os.MkdirAll(filepath.Join(pidPath, "x"), 0o700); err != nil {
			t.Fatal(err)
		}
		_, err := Acquire(dir, Record{}, nil)
		if re, ok := errors.AsType[*RecordError](err); !ok || re.Path != pidPath || !strings.Contains(err.Error(), pidPath) {
			t.Fatalf("Acquire = %v, want a RecordError naming %s", err, pidPath)
		}
		if held, _, err := lockHeld(filepath.Join(dir, LockFileName)); err != nil || held {
			t.Fatalf("lock still held after a failed Acquire (held=%v, err=%v)", held, err)
		}
		if temps, _ := filepath.Glob(filepath.Join(dir, tempPrefix+"*")); len(temps) != 0 {
			t.Fatalf("temporary files left behind: %v", temps)
		}
	})

	t.Run("classification", func(t *testing.T) {
		const path = "/state/gateway.lock"
		for _, errno := range []unix.Errno{unix.EINVAL, unix.ENOLCK, unix.EOPNOTSUPP} {
			err := lockError(path, "lock", errno)
			if _, ok := errors.AsType[*UnsupportedError](err); !ok || !errors.Is(err, errno) ||
				!strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "does not support flock") {
				t.Errorf("%v: got %T %v, want an UnsupportedError naming the path", errno, err, err)
			}
		}
		for errno, hint := range map[unix.Errno]string{
			unix.EACCES: "owns the state directory",
			unix.EPERM:  "owns the state directory",
			unix.EROFS:  "read-only filesystem",
		} {
			err := lockError(path, "open", errno)
			if _, ok := errors.AsType[*LockError](err); !ok || !errors.Is(err, errno) ||
				!strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), hint) {
				t.Errorf("%v: got %T %v, want a LockError naming the path with hint %q", errno, err, err, hint)
			}
		}
	})
}

func TestHeldErrorMessage(t *testing.T) {
	since := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tc := range []struct {
		err  HeldError
		want string
	}{
		{HeldError{PID: 42, Since: since, Path: "/s/gateway.lock"},
			"gateway already running (pid 42 since 2025-03-04T05:06:07Z, lock /s/gateway.lock)"},
		{HeldError{Path: "/s/gateway.lock"},
			"gateway already running (pid unknown, lock /s/gateway.lock)"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}
