package pidlock

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
)

// Environment of the helper process the tests start by re-executing the test binary.
const (
	envHelper     = "PIDLOCK_HELPER"      // "acquire" or "idle"
	envDir        = "PIDLOCK_DIR"         // state directory
	envBarrier    = "PIDLOCK_BARRIER"     // "1": print READY, then wait for EOF on fd 3
	envPauseAt    = "PIDLOCK_PAUSE_AT"    // stage at which to print PAUSED and wait for stdin EOF
	envSlowWrite  = "PIDLOCK_SLOW_WRITE"  // duration to sleep between taking the lock and writing the record
	envIgnoreTerm = "PIDLOCK_IGNORE_TERM" // "1": ignore SIGTERM
)

// Helper exit codes.
const (
	exitHeld  = 2 // another host holds the lock
	exitError = 3 // any other error
)

func TestMain(m *testing.M) {
	// The helper mode runs instead of the tests, before goleak, so that it neither runs
	// tests nor reports the signal goroutine it starts.
	if mode := os.Getenv(envHelper); mode != "" {
		os.Exit(helperMain(mode))
	}
	goleak.VerifyTestMain(m)
}

// helperMain is a tiny gateway: it takes the lock, says so on stdout (or prints the error
// on stderr and exits non-zero), and holds the lock until stdin is closed or SIGTERM.
func helperMain(mode string) int {
	pid := os.Getpid()
	if mode == "idle" {
		fmt.Printf("IDLE %d\n", pid)
		io.Copy(io.Discard, os.Stdin)
		return 0
	}
	if mode != "acquire" {
		fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
		return exitError
	}

	logger := hclog.New(&hclog.LoggerOptions{Name: "helper", Output: os.Stderr, Level: hclog.Debug})
	var slow time.Duration
	if s := os.Getenv(envSlowWrite); s != "" {
		var err error
		if slow, err = time.ParseDuration(s); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return exitError
		}
	}
	pauseAt := os.Getenv(envPauseAt)
	testHook = func(stage string) {
		if stage == stageLocked {
			fmt.Printf("LOCKED %d\n", pid)
			time.Sleep(slow) // simulates a slow record writer; not waiting for a condition
		}
		if stage == pauseAt {
			fmt.Printf("PAUSED %s %d\n", stage, pid)
			io.Copy(io.Discard, os.Stdin) // parked until killed or stdin closes
			os.Exit(exitError)
		}
	}

	sigs := make(chan os.Signal, 1)
	if os.Getenv(envIgnoreTerm) == "1" {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	}

	if os.Getenv(envBarrier) == "1" {
		fmt.Println("READY")
		io.Copy(io.Discard, os.NewFile(3, "barrier")) // every helper wakes at the same EOF
	}

	lock, err := Acquire(os.Getenv(envDir), Record{Config: "helper.hcl", Admin: "127.0.0.1:0"}, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		if _, ok := errors.AsType[*HeldError](err); ok {
			return exitHeld
		}
		return exitError
	}
	fmt.Printf("HELD %d\n", pid)

	stdinClosed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	select {
	case <-sigs:
	case <-stdinClosed:
	}
	if err := lock.Release(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError
	}
	fmt.Println("RELEASED")
	return 0
}

// helperEnv builds the environment entries for a helper.
func helperEnv(dir string, kv ...string) []string {
	env := []string{envDir + "=" + dir}
	for i := 0; i+1 < len(kv); i += 2 {
		env = append(env, kv[i]+"="+kv[i+1])
	}
	return env
}
