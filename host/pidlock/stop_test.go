package pidlock

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeTestRecord puts rec in dir's PID file, as a crashed or foreign host would have.
func writeTestRecord(t *testing.T, dir string, rec Record) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeRecord(dir, rec); err != nil {
		t.Fatal(err)
	}
}

// startIdle starts an unrelated live process and returns it with its start time.
func startIdle(t *testing.T) (*proc, uint64) {
	t.Helper()
	p := startHelper(t, "idle", nil)
	p.waitLine(t, "IDLE", 20*time.Second)
	start, err := procStartTime(p.pid())
	if err != nil {
		t.Fatal(err)
	}
	return p, start
}

// assertAlive fails if p exited or its PID now names another process.
func assertAlive(t *testing.T, p *proc, start uint64) {
	t.Helper()
	if p.exited() || !procAlive(p.pid(), start) {
		t.Fatalf("unrelated process %d was signalled: exited=%v err=%v", p.pid(), p.exited(), p.err)
	}
}

// TestStalePIDFileNamesLiveProcess: a PID file naming a live process that does not hold
// the lock is stale. Probe says so, Acquire takes over, and Stop signals nothing, even
// when the record's start time matches that process.
func TestStalePIDFileNamesLiveProcess(t *testing.T) {
	t.Run("unrelated process", func(t *testing.T) {
		dir := t.TempDir()
		idle, start := startIdle(t)
		writeTestRecord(t, dir, Record{PID: idle.pid(), StartTime: start, StartedAt: time.Now()})

		st, err := Probe(dir)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != Stale || st.Record == nil || st.Record.PID != idle.pid() {
			t.Fatalf("Probe = %+v, want Stale with the record of %d", st, idle.pid())
		}
		if err := Stop(context.Background(), dir, 200*time.Millisecond, true, nil); err != nil {
			t.Fatalf("Stop with no lock held = %v, want nil", err)
		}
		assertAlive(t, idle, start)

		logs, logger := bufLogger()
		lock, err := Acquire(dir, Record{}, logger)
		if err != nil {
			t.Fatalf("Acquire over a stale PID file: %v", err)
		}
		want := "previous gateway pid " + itoa(idle.pid()) + " did not shut down cleanly; taking over"
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("takeover not logged; want %q in\n%s", want, logs.String())
		}
		if err := lock.Release(); err != nil {
			t.Fatal(err)
		}
		assertAlive(t, idle, start)
		idle.stop(t)
	})

	t.Run("pid 1", func(t *testing.T) {
		// Stop is not run against PID 1: the unrelated-process case above proves nothing
		// is signalled, and a bug here must not be able to take down the machine's init.
		start, err := procStartTime(1)
		if err != nil {
			t.Skipf("cannot read /proc/1/stat: %v", err)
		}
		dir := t.TempDir()
		writeTestRecord(t, dir, Record{PID: 1, StartTime: start})
		st, err := Probe(dir)
		if err != nil || st.State != Stale {
			t.Fatalf("Probe = %+v, %v, want Stale", st, err)
		}
		logs, logger := bufLogger()
		lock, err := Acquire(dir, Record{}, logger)
		if err != nil {
			t.Fatalf("Acquire over a PID file naming pid 1: %v", err)
		}
		defer lock.Release()
		if !strings.Contains(logs.String(), "previous gateway pid 1 did not shut down cleanly; taking over") {
			t.Fatalf("takeover of pid 1 not logged:\n%s", logs.String())
		}
	})

	// A host runs, but its PID file was overwritten with the PID of another live process:
	// once with a start time that does not match (the PID was recycled), once with one
	// that does. Stop must signal the host that holds the lock and nothing else.
	for _, tc := range []struct {
		name  string
		delta uint64
	}{{"recycled pid", 1}, {"unrelated pid with matching start time", 0}} {
		t.Run(tc.name+" while a host runs", func(t *testing.T) {
			dir := t.TempDir()
			host := startHelper(t, "acquire", helperEnv(dir))
			host.waitLine(t, "HELD", 20*time.Second)
			idle, start := startIdle(t)
			real, err := readRecord(filepath.Join(dir, PIDFileName))
			if err != nil {
				t.Fatal(err)
			}
			fake := *real
			fake.PID, fake.StartTime = idle.pid(), start+tc.delta
			writeTestRecord(t, dir, fake)

			st, err := Probe(dir)
			if err != nil {
				t.Fatal(err)
			}
			if st.State != Running || st.PID != host.pid() || st.Record != nil {
				t.Fatalf("Probe = %+v, want Running, PID %d (from the lock, not the record), no verified record", st, host.pid())
			}
			if err := Stop(context.Background(), dir, 10*time.Second, false, nil); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if code := host.wait(t, 10*time.Second); code != 0 {
				t.Fatalf("host exited %d, want 0 after SIGTERM\n%s", code, host.stderr.String())
			}
			assertAlive(t, idle, start)
			idle.stop(t)
		})
	}
}

// TestRecycledPIDWithoutProcLocks runs the recycled-PID case where the kernel's lock
// table cannot be read, so the start time is all that tells the recorded process from
// the one now using its PID. Nothing may be signalled: the host is named by no verified
// source, so Stop refuses rather than guesses.
func TestRecycledPIDWithoutProcLocks(t *testing.T) {
	dir := t.TempDir()
	host := startHelper(t, "acquire", helperEnv(dir))
	host.waitLine(t, "HELD", 20*time.Second)
	idle, start := startIdle(t)
	real, err := readRecord(filepath.Join(dir, PIDFileName))
	if err != nil {
		t.Fatal(err)
	}
	fake := *real
	fake.PID, fake.StartTime = idle.pid(), start+1
	writeTestRecord(t, dir, fake)

	procLocksPath = filepath.Join(t.TempDir(), "no-locks")
	t.Cleanup(func() { procLocksPath = "/proc/locks" })

	err = Stop(context.Background(), dir, 200*time.Millisecond, true, nil)
	if !errors.Is(err, ErrHolderUnknown) {
		t.Fatalf("Stop = %v, want ErrHolderUnknown", err)
	}
	assertAlive(t, idle, start)
	if host.exited() {
		t.Fatalf("host was stopped without being identified: %v", host.err)
	}
	_, err = Acquire(dir, Record{}, nil)
	if held, ok := errors.AsType[*HeldError](err); !ok || held.PID != 0 ||
		!strings.Contains(err.Error(), "(pid unknown, lock ") {
		t.Fatalf("Acquire = %v, want a HeldError with pid unknown", err)
	}
	idle.stop(t)
	host.stop(t)
}

// TestStop stops real holder processes.
func TestStop(t *testing.T) {
	ctx := context.Background()

	t.Run("graceful", func(t *testing.T) {
		dir := t.TempDir()
		host := startHelper(t, "acquire", helperEnv(dir))
		host.waitLine(t, "HELD", 20*time.Second)
		if err := Stop(ctx, dir, 10*time.Second, false, nil); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if code := host.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("host exited %d\n%s", code, host.stderr.String())
		}
		if _, err := os.Stat(filepath.Join(dir, PIDFileName)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("PID file after a clean stop: %v", err)
		}
		if st, err := Probe(dir); err != nil || st.State != NotRunning {
			t.Fatalf("Probe after stop = %+v, %v, want NotRunning", st, err)
		}
	})

	t.Run("ignores SIGTERM", func(t *testing.T) {
		dir := t.TempDir()
		host := startHelper(t, "acquire", helperEnv(dir, envIgnoreTerm, "1"))
		host.waitLine(t, "HELD", 20*time.Second)

		err := Stop(ctx, dir, 300*time.Millisecond, false, nil)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("Stop without force = %v, want ErrTimeout", err)
		}
		if !strings.Contains(err.Error(), itoa(host.pid())) {
			t.Fatalf("timeout error does not name the pid: %v", err)
		}
		if host.exited() {
			t.Fatalf("host exited although it ignores SIGTERM: %v", host.err)
		}

		if err := Stop(ctx, dir, 300*time.Millisecond, true, nil); err != nil {
			t.Fatalf("Stop with force: %v", err)
		}
		host.wait(t, 10*time.Second)
		ws := host.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("host ended with %v, want SIGKILL", host.cmd.ProcessState)
		}
		if st, err := Probe(dir); err != nil || st.State != Stale {
			t.Fatalf("Probe after kill = %+v, %v, want Stale", st, err)
		}
	})

	t.Run("context cancelled", func(t *testing.T) {
		dir := t.TempDir()
		host := startHelper(t, "acquire", helperEnv(dir, envIgnoreTerm, "1"))
		host.waitLine(t, "HELD", 20*time.Second)
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		err := Stop(cctx, dir, time.Minute, true, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop = %v, want context.DeadlineExceeded", err)
		}
	})

	t.Run("not running", func(t *testing.T) {
		for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "missing")} {
			if err := Stop(ctx, dir, time.Second, true, nil); err != nil {
				t.Fatalf("Stop(%s) = %v, want nil", dir, err)
			}
		}
	})

	t.Run("own process", func(t *testing.T) {
		dir := t.TempDir()
		lock, err := Acquire(dir, Record{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Release()
		if err := Stop(ctx, dir, time.Second, true, nil); err == nil {
			t.Fatal("Stop of the calling process's own lock succeeded; it must refuse")
		}
	})
}

// TestStopSleepChildSurvives: a PID file naming a live `sleep` child (an unrelated
// process, with its real start time) while nobody holds the lock; Stop must leave it be.
func TestStopSleepChildSurvives(t *testing.T) {
	sleepPath, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	cmd := exec.Command(sleepPath, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-done
	}()
	start, err := procStartTime(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeTestRecord(t, dir, Record{PID: cmd.Process.Pid, StartTime: start})
	if err := Stop(context.Background(), dir, 100*time.Millisecond, true, nil); err != nil {
		t.Fatalf("Stop = %v, want nil (nobody holds the lock)", err)
	}
	select {
	case err := <-done:
		t.Fatalf("sleep %d was signalled: %v", cmd.Process.Pid, err)
	default:
	}
	if !procAlive(cmd.Process.Pid, start) {
		t.Fatalf("sleep %d is gone", cmd.Process.Pid)
	}
}
