package supervisor

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// Plugins are started from one goroutine locked to its OS thread for the
// life of the host. Pdeathsig fires when the *thread* that forked a child
// exits, not the process; a Go thread can exit under us (a locked goroutine
// that returns takes its thread with it), so children are forked from a
// thread that never exits. The child then dies with the host, even when the
// host is SIGKILLed.
var spawner struct {
	once sync.Once
	reqs chan spawnRequest
}

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

func prepareCmd(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

func startCmd(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnRequest)
		go spawnLoop(spawner.reqs)
	})
	req := spawnRequest{cmd: cmd, done: make(chan error, 1)}
	spawner.reqs <- req
	return <-req.done
}

func spawnLoop(reqs <-chan spawnRequest) {
	runtime.LockOSThread() // never unlocked: this thread lives as long as the host
	for r := range reqs {
		r.done <- r.cmd.Start()
	}
}
