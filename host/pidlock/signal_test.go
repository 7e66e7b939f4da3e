package pidlock

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSignal covers Signal (used by `gateway reload`): it reaches the verified holder
// and nothing else.
func TestSignal(t *testing.T) {
	dir := t.TempDir()
	if _, err := Signal(dir, unix.SIGHUP); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Signal with nothing running = %v, want ErrNotRunning", err)
	}

	idle, start := startIdle(t)
	writeTestRecord(t, dir, Record{PID: idle.pid(), StartTime: start})
	if _, err := Signal(dir, unix.SIGTERM); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Signal over a stale PID file = %v, want ErrNotRunning", err)
	}
	assertAlive(t, idle, start)
	idle.stop(t)

	host := startHelper(t, "acquire", helperEnv(dir))
	host.waitLine(t, "HELD", 20*time.Second)
	pid, err := Signal(dir, unix.SIGTERM)
	if err != nil || pid != host.pid() {
		t.Fatalf("Signal = %d, %v, want pid %d", pid, err, host.pid())
	}
	if code := host.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("host exited %d after SIGTERM\n%s", code, host.stderr.String())
	}
}
