package pidlock

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrNotRunning is returned by Signal when no gateway holds the lock.
var ErrNotRunning = errors.New("no gateway is running")

// Signal sends sig to the verified lock holder of dir (for `gateway
// reload`, SIGHUP) and returns its PID. As with Stop, the PID is signalled
// only while it still belongs to the process holding the lock.
func Signal(dir string, sig unix.Signal) (int, error) {
	st, err := Probe(dir)
	if err != nil {
		return 0, err
	}
	if st.State != Running {
		return 0, fmt.Errorf("%w (state dir %s)", ErrNotRunning, dir)
	}
	h, ok, err := holderOf(st)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("%w (state dir %s)", ErrNotRunning, dir)
	}
	sent, err := signalHolder(h, st.LockPath, sig)
	if err != nil {
		return 0, err
	}
	if !sent {
		return 0, fmt.Errorf("%w (it exited just now)", ErrNotRunning)
	}
	return h.pid, nil
}
