package main

import (
	"fmt"
	"syscall"
	"time"
)

// fastRestart is the restart block the recovery and soak runs use: a
// short backoff that stays short (kills closer than the supervisor's 10 s
// stable-run window would otherwise double it), and no crash-loop breaker
// within the run.
const fastRestart = `    initial_backoff = "50ms"
    max_backoff     = "50ms"
    max_failures    = 100000
    failure_window  = "1s"`

// recovery: SIGKILL the HTTP plugin → running again, and answering.
func (r *runner) recovery() error {
	in, err := newInstall(installOpts{platforms: 1, restart: fastRestart})
	if err != nil {
		return err
	}
	h, err := in.startReady(20 * time.Second)
	if err != nil {
		return err
	}
	defer h.stop(10 * time.Second)
	c := newLoadClient(1, 2*time.Second)
	defer c.CloseIdleConnections()

	runs := r.runs(7)
	var running, answering sample
	for i := range runs {
		if err := waitAnswering(in.url(0), h.proc, 10*time.Second); err != nil {
			return err
		}
		st, err := in.status()
		if err != nil {
			return err
		}
		old := st.pluginPID(0)
		if old == 0 {
			return fmt.Errorf("no plugin PID in /v1/status")
		}
		t0 := time.Now()
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			return err
		}
		_, err = pollUntil(10*time.Second, time.Millisecond, h.proc, func() bool {
			st, err := in.status()
			return err == nil && st.Platforms[0].State == "running" && st.pluginPID(0) != old && st.pluginPID(0) != 0
		})
		if err != nil {
			return fmt.Errorf("plugin not running again: %w; log: %s", err, logTail(h.logPath))
		}
		running = append(running, ms(time.Since(t0)))
		_, err = pollUntil(10*time.Second, time.Millisecond, h.proc, func() bool {
			ok, _ := postMessage(c, in.url(0), "rec", fmt.Sprint("after kill ", i))
			return ok
		})
		if err != nil {
			return fmt.Errorf("plugin not answering again: %w", err)
		}
		answering = append(answering, ms(time.Since(t0)))
		c.CloseIdleConnections()
	}
	r.t.add(row{
		Figure: "plugin recovery",
		How: fmt.Sprintf("SIGKILL the HTTP plugin (pid from /v1/status) → /v1/status running with a new pid %s → a POST answered 200 (the result); "+
			"restart { initial_backoff = \"50ms\", max_backoff = \"50ms\" } (jittered over 25–50 ms, kit.Backoff); %d runs", running.format(fmtMs), runs),
		Result:   answering.format(fmtMs),
		Baseline: "backoff 25–50 ms",
		Goal:     fmt.Sprintf("%s beyond the backoff; goal ≤ 500 ms", fmtMs(answering.median()-45)),
		Verdict:  judge(answering.median() <= 500),
	})
	return nil
}
