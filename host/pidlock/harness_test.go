package pidlock

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/shared/kit/fakekit"
)

// syncBuffer is a bytes.Buffer safe for the exec copy goroutine and the test.
type syncBuffer = fakekit.SyncBuffer

// proc is a helper process running this test binary in helper mode.
type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{} // closed once the process has exited and been reaped
	err    error         // cmd.Wait's result; read after done
}

// startHelper starts a helper in mode with extra environment; extra files become fd 3...
func startHelper(tb testing.TB, mode string, env []string, extra ...*os.File) *proc {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(exe)
	// The race detector sleeps a second at exit by default; helpers exit a lot.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	p.cmd.Env = append(append(os.Environ(), envHelper+"="+mode, "GORACE="+gorace), env...)
	p.cmd.ExtraFiles = extra
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		tb.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.kill()
		<-p.done
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) kill() { p.cmd.Process.Signal(syscall.SIGKILL) }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// line returns the first stdout line starting with prefix, if any.
func (p *proc) line(prefix string) (string, bool) {
	for l := range strings.SplitSeq(p.stdout.String(), "\n") {
		if strings.HasPrefix(l, prefix) {
			return l, true
		}
	}
	return "", false
}

// waitLine polls for a stdout line starting with prefix.
func (p *proc) waitLine(tb testing.TB, prefix string, timeout time.Duration) string {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if l, ok := p.line(prefix); ok {
			return l
		}
		if p.exited() {
			if l, ok := p.line(prefix); ok {
				return l
			}
			tb.Fatalf("helper %d exited (%v) without printing %q\nstdout:\n%s\nstderr:\n%s",
				p.pid(), p.err, prefix, p.stdout.String(), p.stderr.String())
		}
		if time.Now().After(deadline) {
			tb.Fatalf("helper %d did not print %q within %s\nstdout:\n%s\nstderr:\n%s",
				p.pid(), prefix, timeout, p.stdout.String(), p.stderr.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// wait waits for the process to exit and returns its exit code (-1 when killed by a
// signal).
func (p *proc) wait(tb testing.TB, timeout time.Duration) int {
	tb.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		tb.Fatalf("helper %d still running after %s\nstderr:\n%s", p.pid(), timeout, p.stderr.String())
	}
	if p.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) {
		tb.Fatalf("helper %d: %v", p.pid(), p.err)
	}
	return ee.ExitCode()
}

// stop closes stdin, which makes a holding helper release and exit 0.
func (p *proc) stop(tb testing.TB) {
	tb.Helper()
	p.stdin.Close()
	if code := p.wait(tb, 10*time.Second); code != 0 {
		tb.Fatalf("helper %d exited %d\nstderr:\n%s", p.pid(), code, p.stderr.String())
	}
}

// pidField returns the last field of a line such as "HELD 1234" as a PID.
func pidField(tb testing.TB, line string) int {
	tb.Helper()
	f := strings.Fields(line)
	pid, err := strconv.Atoi(f[len(f)-1])
	if err != nil {
		tb.Fatalf("no pid in %q", line)
	}
	return pid
}

// pollUntil polls cond until it holds or timeout passes.
func pollUntil(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	fakekit.Eventually(tb, timeout, what, cond)
}

// bufLogger returns an hclog logger writing into a buffer the test can read.
func bufLogger() (*syncBuffer, hclog.Logger) {
	buf := &syncBuffer{}
	return buf, hclog.New(&hclog.LoggerOptions{Name: "test", Output: buf, Level: hclog.Debug})
}

func itoa(n int) string { return strconv.Itoa(n) }
