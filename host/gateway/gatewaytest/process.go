package gatewaytest

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// Process is a command started in the background: a host, a bare server.
type Process struct {
	// Cmd is the command; do not call its Wait.
	Cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// StartProcess starts cmd and reaps it when it exits.
func StartProcess(cmd *exec.Cmd) (*Process, error) {
	if cmd.WaitDelay == 0 {
		// A child of the process (a plugin the kernel has not killed yet)
		// may hold its output pipe for a moment after it exits: the exit is
		// what tests wait for, not the pipe.
		cmd.WaitDelay = 3 * time.Second
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	p := &Process{Cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// PID returns the process id.
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Exited is closed once the process has exited and been reaped.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Alive reports whether the process has not exited yet.
func (p *Process) Alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Err returns how the process ended (nil for exit code 0); call it after
// Exited is closed.
func (p *Process) Err() error { return p.err }

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// Kill sends SIGKILL and waits until the process is reaped.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// Stop sends SIGTERM and waits for the exit, sending SIGKILL after timeout.
func (p *Process) Stop(timeout time.Duration) {
	if !p.Alive() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.Kill()
	}
}

// Wait waits up to timeout for the exit and returns the exit code; an
// error when the process is still running.
func (p *Process) Wait(timeout time.Duration) (int, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		return 0, fmt.Errorf("%s did not exit within %s", p.Cmd.Path, timeout)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode(), nil
	}
	return 0, p.err
}
