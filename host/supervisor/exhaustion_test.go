package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// exhaustFDs lowers this process's descriptor limit and fills it, as a
// connection flood does; the returned func gives everything back.
func exhaustFDs(t *testing.T) (release func()) {
	t.Helper()
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	low := orig
	low.Cur = uint64(len(open) + 64)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var fill []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		fill = append(fill, f)
	}
	return func() {
		for _, f := range fill {
			f.Close()
		}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
			t.Error(err)
		}
	}
}

// A plugin that cannot start because the host is out of file descriptors
// is retried, not failed for good: the breaker is for crashing plugins,
// and the host's own exhaustion ends when the flood does.
func TestHostExhaustionDoesNotTripTheBreaker(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plugins")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "gateway-plugin-x")
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Old enough to be started at once (see settleTime).
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	sup := New(Options{})
	defer sup.Stop()

	release := exhaustFDs(t)
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	sup.Apply([]Spec{{Name: "x", Plugin: "x", Path: path, Dir: dir, Enabled: true, Fingerprint: "1",
		Restart: RestartPolicy{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
			MaxFailures: 2, FailureWindow: time.Minute}}})
	deadline := time.Now().Add(10 * time.Second)
	var st Status
	for time.Now().Before(deadline) {
		st = sup.Statuses()[0]
		// Between attempts the state is "starting" with no error yet:
		// wait for one that shows the error.
		if st.State == StateFailed || (st.Restarts >= 6 && strings.Contains(st.Error, "too many open files")) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	release()
	released = true
	if st.State == StateFailed {
		t.Fatalf("the platform failed for good while the host was out of descriptors: %+v", st)
	}
	if st.Restarts < 6 || !strings.Contains(st.Error, "too many open files") {
		t.Fatalf("status = %+v, want backoff after repeated 'too many open files'", st)
	}
}
