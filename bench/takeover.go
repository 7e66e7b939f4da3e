package main

import (
	"fmt"
	"time"
)

// takeover: SIGKILL the host → the next host holds the lock → it is ready.
func (r *runner) takeover() error {
	in, err := newInstall(installOpts{platforms: 1})
	if err != nil {
		return err
	}
	h, err := in.startReady(20 * time.Second)
	if err != nil {
		return err
	}
	runs := r.runs(7)
	var locked, ready, coldReady sample
	for range runs {
		// The previous host's start, from exec to ready, for comparison.
		t0 := time.Now()
		h.kill() // SIGKILL, then reaped, as systemd would see it
		next, err := in.start()
		if err != nil {
			return err
		}
		_, err = pollUntil(10*time.Second, 200*time.Microsecond, next.proc, func() bool {
			return flockHolder(in.lockPath()) == next.pid()
		})
		if err != nil {
			next.kill()
			return fmt.Errorf("next host did not take the lock: %w; log: %s", err, logTail(next.logPath))
		}
		locked = append(locked, ms(time.Since(t0)))
		if _, err := pollUntil(10*time.Second, time.Millisecond, next.proc, in.ready); err != nil {
			next.kill()
			return fmt.Errorf("next host not ready: %w; log: %s", err, logTail(next.logPath))
		}
		ready = append(ready, ms(time.Since(t0)))
		h = next
	}
	// Baseline: the same host started with no predecessor (clean stop first).
	for range min(runs, 3) {
		h.stop(10 * time.Second)
		t0 := time.Now()
		next, err := in.start()
		if err != nil {
			return err
		}
		if _, err := pollUntil(10*time.Second, time.Millisecond, next.proc, in.ready); err != nil {
			next.kill()
			return err
		}
		coldReady = append(coldReady, ms(time.Since(t0)))
		h = next
	}
	h.stop(10 * time.Second)
	how := fmt.Sprintf("SIGKILL the host, reap it, exec the next `gateway run` on the same state dir; lock = /proc/locks shows the next pid holding "+
		"the flock on state/gateway.lock (polled every 0.2 ms), ready = /readyz 200; %d runs; baseline: exec → ready after a clean stop", runs)
	r.t.add(row{Figure: "lock takeover: lock held", How: how, Result: locked.format(fmtMs), Baseline: "–",
		Goal: "goal ≤ 50 ms", Verdict: judge(locked.median() <= 50)})
	r.t.add(row{Figure: "lock takeover: ready", Result: ready.format(fmtMs), Baseline: coldReady.format(fmtMs),
		Goal: fmt.Sprintf("%.2f× clean start; goal ≤ 300 ms", ready.median()/coldReady.median()), Verdict: judge(ready.median() <= 300)})
	return nil
}
