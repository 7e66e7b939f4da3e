package pidlock

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAcquireRelease(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	lock, err := Acquire(dir, Record{Config: "/etc/gateway/config.hcl", Admin: "127.0.0.1:8787"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode = %v, %v, want 0700", fi.Mode(), err)
	}

	rec := lock.Record()
	start, _ := procStartTime(os.Getpid())
	if rec.PID != os.Getpid() || rec.StartTime != start || rec.StartTime == 0 ||
		rec.Config != "/etc/gateway/config.hcl" || rec.Admin != "127.0.0.1:8787" ||
		!reflect.DeepEqual(rec.Argv, os.Args) || rec.StartedAt.IsZero() || rec.LockIno == 0 {
		t.Fatalf("record not filled in: %+v", rec)
	}
	data, err := os.ReadFile(filepath.Join(dir, PIDFileName))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk Record
	if err := json.Unmarshal(data, &onDisk); err != nil {
		t.Fatal(err)
	}
	if onDisk.PID != rec.PID || onDisk.StartTime != rec.StartTime || !onDisk.StartedAt.Equal(rec.StartedAt) {
		t.Fatalf("PID file %s does not match the record %+v", data, rec)
	}
	for _, key := range []string{`"pid"`, `"start_time"`, `"argv"`, `"config"`, `"admin"`, `"started_at"`} {
		if !strings.Contains(string(data), key) {
			t.Errorf("PID file lacks %s: %s", key, data)
		}
	}
	if lock.LockPath() != filepath.Join(dir, LockFileName) {
		t.Fatalf("LockPath = %s", lock.LockPath())
	}

	// Plugin processes must never inherit the lock.
	flags := fdFlags(t, lock.fd)
	const oCloexec = 0o2000000
	if flags&oCloexec == 0 {
		t.Fatalf("lock fd flags %o lack O_CLOEXEC", flags)
	}

	// A second Acquire, even in the same process, is refused and names the holder.
	_, err = Acquire(dir, Record{}, nil)
	held, ok := errors.AsType[*HeldError](err)
	if !ok || held.PID != os.Getpid() || held.Record == nil {
		t.Fatalf("second Acquire = %v, want a HeldError naming pid %d with its record", err, os.Getpid())
	}
	want := fmt.Sprintf("gateway already running (pid %d since %s, lock %s)",
		os.Getpid(), rec.StartedAt.Format(time.RFC3339), lock.LockPath())
	if err.Error() != want {
		t.Fatalf("error = %q, want %q", err, want)
	}
	if st, err := Probe(dir); err != nil || st.State != Running || st.PID != os.Getpid() || st.Record == nil {
		t.Fatalf("Probe while held = %+v, %v", st, err)
	}

	if err := lock.Release(); err != nil {
		t.Fatal(err)
	}
	if err := lock.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, PIDFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("PID file after Release: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, LockFileName)); err != nil {
		t.Fatalf("lock file must stay after Release: %v", err)
	}
	if st, err := Probe(dir); err != nil || st.State != NotRunning {
		t.Fatalf("Probe after Release = %+v, %v", st, err)
	}
}

// fdFlags reads the open flags of one of our descriptors from /proc/self/fdinfo.
func fdFlags(t *testing.T, fd int) uint64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			if err != nil {
				t.Fatal(err)
			}
			return flags
		}
	}
	t.Fatalf("no flags in fdinfo: %s", data)
	return 0
}

func TestProbeStates(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	if st, err := Probe(missing); err != nil || st.State != NotRunning {
		t.Fatalf("Probe(missing) = %+v, %v", st, err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Probe created the state directory")
	}

	dir := t.TempDir()
	writeTestRecord(t, dir, Record{PID: 999999999})
	if st, err := Probe(dir); err != nil || st.State != Stale || st.Record == nil || st.Record.PID != 999999999 {
		t.Fatalf("Probe with a PID file and no lock file = %+v, %v", st, err)
	}
	if err := os.WriteFile(filepath.Join(dir, PIDFileName), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st, err := Probe(dir); err != nil || st.State != Stale || st.Record != nil {
		t.Fatalf("Probe with an unreadable PID file = %+v, %v", st, err)
	}
	for _, s := range []State{NotRunning, Stale, Running} {
		if s.String() == "unknown" {
			t.Errorf("State %d has no name", s)
		}
	}
}

// TestTakeoverOfOldFormats: older gateways wrote a bare PID, and a file can be damaged;
// neither may block a start.
func TestTakeoverOfOldFormats(t *testing.T) {
	for content, want := range map[string]string{
		"31337\n": "previous gateway pid 31337 did not shut down cleanly; taking over",
		"{garb":   "previous gateway left an unreadable PID file; taking over",
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, PIDFileName), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		logs, logger := bufLogger()
		lock, err := Acquire(dir, Record{}, logger)
		if err != nil {
			t.Fatalf("Acquire over %q: %v", content, err)
		}
		if !strings.Contains(logs.String(), want) {
			t.Errorf("over %q: want log %q, got\n%s", content, want, logs.String())
		}
		lock.Release()
	}
}

// TestLoserNamesSlowWinner: a start that loses to a winner which has not written its
// record yet must still name the winner, from the record once it appears or from the
// kernel's lock table, and never the dead PID in a stale record.
func TestLoserNamesSlowWinner(t *testing.T) {
	dir := t.TempDir()
	// A stale record of a dead process.
	dead := startHelper(t, "idle", nil)
	dead.waitLine(t, "IDLE", 20*time.Second)
	deadStart, _ := procStartTime(dead.pid())
	dead.stop(t)
	writeTestRecord(t, dir, Record{PID: dead.pid(), StartTime: deadStart})

	t.Run("record never written", func(t *testing.T) {
		winner := startHelper(t, "acquire", helperEnv(dir, envPauseAt, stageLocked))
		winner.waitLine(t, "PAUSED", 20*time.Second)
		_, err := Acquire(dir, Record{}, nil)
		held, ok := errors.AsType[*HeldError](err)
		if !ok || held.PID != winner.pid() || held.Record != nil {
			t.Fatalf("Acquire = %v, want a HeldError naming %d from /proc/locks", err, winner.pid())
		}
		if held.Since.IsZero() || !strings.Contains(err.Error(), fmt.Sprintf("(pid %d since ", winner.pid())) {
			t.Fatalf("error lacks the start time from /proc: %v", err)
		}
		winner.kill()
		winner.wait(t, 10*time.Second)
	})

	t.Run("record written late", func(t *testing.T) {
		winner := startHelper(t, "acquire", helperEnv(dir, envSlowWrite, "300ms"))
		winner.waitLine(t, "LOCKED", 20*time.Second)
		_, err := Acquire(dir, Record{}, nil)
		held, ok := errors.AsType[*HeldError](err)
		if !ok || held.PID != winner.pid() {
			t.Fatalf("Acquire = %v, want a HeldError naming %d", err, winner.pid())
		}
		if _, done := winner.line("HELD"); done && held.Record == nil {
			t.Fatalf("winner wrote its record in time but the error carries none: %v", err)
		}
		winner.stop(t)
	})
}

func TestParseStat(t *testing.T) {
	// The command name may hold spaces and parentheses. Flags 4194564 has PF_EXITING.
	stat := "4242 (we ird) (name)) S 1 4242 4242 0 -1 4194564 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10"
	got, err := parseStat([]byte(stat))
	if err != nil || got.startTime != 987654 || !got.exiting {
		t.Fatalf("parseStat = %+v, %v, want start 987654, exiting", got, err)
	}
	if _, err := parseStat([]byte("4242 (x) S 1 2")); err == nil {
		t.Fatal("short stat line accepted")
	}
	if !sigkillPending([]byte("Name:\tx\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000100\n")) ||
		sigkillPending([]byte("SigPnd:\t0000000000004000\nShdPnd:\t0000000000000000\n")) {
		t.Fatal("sigkillPending misreads the masks")
	}
	if procExiting(os.Getpid()) {
		t.Fatal("this process reports itself exiting")
	}
}

func TestParseProcLocks(t *testing.T) {
	data := `1: POSIX  ADVISORY  WRITE 77 08:01:5678 0 EOF
2: FLOCK  ADVISORY  READ 88 08:01:5678 0 EOF
3: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF
3: -> FLOCK  ADVISORY  WRITE 1235 08:01:5678 0 EOF
4: FLOCK  ADVISORY  WRITE 99 fe:00:5678 0 EOF
5: OFDLCK ADVISORY  WRITE -1 08:01:42 0 EOF
garbage
`
	entries := parseProcLocks([]byte(data))
	if len(entries) != 6 {
		t.Fatalf("parsed %d entries, want 6: %+v", len(entries), entries)
	}
	if !entries[3].blocked || entries[3].pid != 1235 {
		t.Fatalf("waiter line parsed as %+v", entries[3])
	}
	dev := func(maj, mnr uint64) uint64 { return maj<<8 | mnr } // the classic encoding; fine for small numbers
	if pid := flockHolderIn(entries, fileID{dev: dev(8, 1), ino: 5678}); pid != 1234 {
		t.Fatalf("holder of 08:01:5678 = %d, want 1234", pid)
	}
	if pid := flockHolderIn(entries, fileID{dev: dev(0xfe, 0), ino: 5678}); pid != 99 {
		t.Fatalf("holder of fe:00:5678 = %d, want 99", pid)
	}
	// A device that matches no line: the inode alone is ambiguous here (two holders).
	if pid := flockHolderIn(entries, fileID{dev: dev(9, 9), ino: 5678}); pid != 0 {
		t.Fatalf("ambiguous inode-only match gave %d, want 0", pid)
	}
	if pid := flockHolderIn(entries, fileID{dev: dev(8, 1), ino: 42}); pid != 0 {
		t.Fatalf("OFD lock taken for a flock holder: %d", pid)
	}

	// And the real thing: our own lock shows up under our PID.
	lock, err := Acquire(t.TempDir(), Record{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	if pid := flockHolder(lock.id); pid != os.Getpid() {
		t.Fatalf("/proc/locks holder of our lock = %d, want %d", pid, os.Getpid())
	}
}
