package main

import (
	"errors"
	"fmt"
	"time"
)

// coldStart: `gateway run` until all 3 HTTP platforms are running.
func (r *runner) coldStart() error {
	const platforms = 3
	runs := r.runs(7)
	var gw, ready, bs sample
	for range runs {
		in, err := newInstall(installOpts{platforms: platforms})
		if err != nil {
			return err
		}
		t0 := time.Now()
		h, err := in.start()
		if err != nil {
			return err
		}
		took, err := pollUntil(10*time.Second, time.Millisecond, h.proc, func() bool {
			st, err := in.status()
			return err == nil && st.allRunning(platforms)
		})
		if err != nil {
			h.kill()
			return fmt.Errorf("cold start: %w; log: %s", err, logTail(h.logPath))
		}
		gw = append(gw, ms(took))
		// Ready as systemd would see it, from the same start.
		if _, err := pollUntil(5*time.Second, time.Millisecond, h.proc, in.ready); err == nil {
			ready = append(ready, ms(time.Since(t0)))
		}
		h.stop(10 * time.Second)

		// Baseline: one Go process started until it answers HTTP.
		t0 = time.Now()
		b, err := startBare()
		if err != nil {
			return err
		}
		bs = append(bs, ms(time.Since(t0)))
		b.kill()
	}
	r.t.add(row{
		Figure: "cold start (3 platforms)",
		How: fmt.Sprintf("exec `gateway run` (fresh state dir, 3 HTTP platforms = 3 plugin processes) until /v1/status shows all 3 running, polled every 1 ms; %d runs; /readyz 200 at %s; "+
			"baseline: exec of one bare Go HTTP server until it answers", runs, ready.format(fmtMs)),
		Result:   gw.format(fmtMs),
		Baseline: bs.format(fmtMs),
		Goal:     fmt.Sprintf("%.1f× baseline; goal ≤ 150 ms", gw.median()/bs.median()),
		Verdict:  judge(gw.median() <= 150),
	})
	return nil
}

// errExited is returned by pollUntil when the watched process exits.
var errExited = errors.New("process exited")

// pollUntil calls cond every interval until it holds and returns the time
// since the call; it fails after timeout or when p (if not nil) exits.
func pollUntil(timeout, interval time.Duration, p *proc, cond func() bool) (time.Duration, error) {
	t0 := time.Now()
	for {
		if cond() {
			return time.Since(t0), nil
		}
		if p != nil && !p.alive() {
			return 0, errExited
		}
		if time.Since(t0) > timeout {
			return 0, fmt.Errorf("condition not met within %s", timeout)
		}
		time.Sleep(interval)
	}
}
