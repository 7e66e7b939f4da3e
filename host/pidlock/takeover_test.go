package pidlock

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTakeoverAfterSIGKILL kills the holder at random points (before, while and after
// writing its record) and starts again: the next host must take over at once, and must
// log the takeover line naming the dead PID whenever a record of it was left behind.
// This is the bug the package fixes: a PID file left by a SIGKILLed gateway blocked the
// next start with "PID file race lost".
func TestTakeoverAfterSIGKILL(t *testing.T) {
	dir := t.TempDir()
	// Each kill point twice, in random order.
	stages := []string{stageLocked, stageRecordWritten, stageRenamed, "held"}
	stages = append(stages, stages...)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	rng.Shuffle(len(stages), func(i, j int) { stages[i], stages[j] = stages[j], stages[i] })

	stalePID := 0 // PID in the record on disk, of a process that is dead
	for _, stage := range stages {
		env := helperEnv(dir)
		wantLine := "HELD"
		if stage != "held" {
			env = helperEnv(dir, envPauseAt, stage)
			wantLine = "PAUSED " + stage
		}
		p := startHelper(t, "acquire", env)
		p.waitLine(t, wantLine, 20*time.Second)
		checkTakeoverLog(t, p, stalePID)

		p.kill()
		p.wait(t, 10*time.Second)
		t.Logf("killed %d at %s", p.pid(), stage)
		if stage == stageRenamed || stage == "held" {
			stalePID = p.pid()
		}
		rec, err := readRecord(filepath.Join(dir, PIDFileName))
		if stalePID != 0 && (err != nil || rec.PID != stalePID) {
			t.Fatalf("after killing at %s the record should name %d: %+v, %v", stage, stalePID, rec, err)
		}
	}

	// The last start takes over and shuts down cleanly, leaving only the lock file.
	p := startHelper(t, "acquire", helperEnv(dir))
	p.waitLine(t, "HELD", 20*time.Second)
	checkTakeoverLog(t, p, stalePID)
	p.stop(t)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != LockFileName {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("state dir after a clean stop holds %v, want only %s (temporary records must be cleaned up)", names, LockFileName)
	}
}

// checkTakeoverLog asserts that p logged the takeover of stalePID, or no takeover at all
// when stalePID is 0.
func checkTakeoverLog(t *testing.T, p *proc, stalePID int) {
	t.Helper()
	stderr := p.stderr.String()
	if stalePID == 0 {
		if strings.Contains(stderr, "did not shut down cleanly") {
			t.Fatalf("helper %d logged a takeover with no stale record:\n%s", p.pid(), stderr)
		}
		return
	}
	want := fmt.Sprintf("previous gateway pid %d did not shut down cleanly; taking over", stalePID)
	// stderr is its own pipe, copied by its own goroutine: the line printed
	// before HELD on stdout may still be on its way.
	deadline := time.Now().Add(5 * time.Second)
	for !(strings.Contains(stderr, want) && strings.Contains(stderr, "[WARN]")) {
		if time.Now().After(deadline) {
			t.Fatalf("helper %d did not log %q at WARN:\n%s", p.pid(), want, stderr)
		}
		time.Sleep(10 * time.Millisecond)
		stderr = p.stderr.String()
	}
}
