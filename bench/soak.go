package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// resources are the host's figures that must return to baseline.
type resources struct {
	goroutines, fds int
	mem             memInfo
}

func hostResources(in *install, pid int) (resources, error) {
	var r resources
	var err error
	if r.goroutines, err = in.goroutines(); err != nil {
		return r, err
	}
	if r.fds, err = fdCount(pid); err != nil {
		return r, err
	}
	r.mem, err = memOf(pid)
	return r, err
}

// Tolerances for "back to baseline" after the soak.
const (
	tolGoroutines = 10
	tolFDs        = 4
)

// tolRSS is the RSS (KiB) a host may keep above its baseline after the
// soak: Go keeps freed heap for a while, and the store's mmap grows with
// the transcripts written.
func tolRSS(base int) int { return max(base/2, 16<<10) }

func (r resources) within(base resources) bool {
	return r.goroutines <= base.goroutines+tolGoroutines && r.fds <= base.fds+tolFDs &&
		r.mem.RSS <= base.mem.RSS+tolRSS(base.mem.RSS)
}

// soakCounts are the soak's request outcomes.
type soakCounts struct {
	ok, clearErr, timeout, bad, overflow atomic.Int64
}

// soakRun: steady open-loop load for the soak duration while the HTTP
// plugin is SIGKILLed at random; then every acknowledged turn must be in
// the store, and the host's goroutines, fds and RSS back near baseline.
func (r *runner) soakRun() error {
	in, err := newInstall(installOpts{platforms: 1, restart: fastRestart})
	if err != nil {
		return err
	}
	h, err := in.startReady(20 * time.Second)
	if err != nil {
		return err
	}
	defer func() { h.stop(10 * time.Second) }()
	url := in.url(0)

	// Warm up, then settle: the baseline includes pools that exist once
	// messages have flowed.
	warm := closedLoop(url, r.opts.clients, 2*time.Second, "warm")
	rate := r.gwMax * 0.3
	if rate == 0 {
		rate = warm.rate() * 0.3
	}
	rate = min(max(rate, 50), 1500)
	time.Sleep(3 * time.Second)
	base, err := hostResources(in, h.pid())
	if err != nil {
		return err
	}

	const sessions = 32
	acked := make([]atomic.Int64, sessions)
	var counts soakCounts
	var kills atomic.Int64
	stopKiller := make(chan struct{})
	var killer sync.WaitGroup
	killer.Go(func() {
		for {
			select {
			case <-stopKiller:
				return
			case <-time.After(time.Duration(2000+rand.IntN(3000)) * time.Millisecond):
			}
			if st, err := in.status(); err == nil && st.pluginPID(0) != 0 {
				if syscall.Kill(st.pluginPID(0), syscall.SIGKILL) == nil {
					kills.Add(1)
				}
			}
		}
	})

	const clientTimeout = 5 * time.Second
	c := newLoadClient(256, clientTimeout)
	sem := make(chan struct{}, 2048)
	var wg sync.WaitGroup
	start := time.Now()
	total := int(rate * r.opts.soak.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	for i := range total {
		at := start.Add(time.Duration(i) * interval)
		if w := time.Until(at); w > 0 {
			time.Sleep(w)
		}
		select {
		case sem <- struct{}{}:
		default:
			counts.overflow.Add(1)
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			s := i % sessions
			switch send(c, url, "soak"+strconv.Itoa(s), "soak "+strconv.Itoa(i)) {
			case outOK:
				acked[s].Add(1)
				counts.ok.Add(1)
			case outClearErr:
				counts.clearErr.Add(1)
			case outTimeout:
				counts.timeout.Add(1)
			default:
				counts.bad.Add(1)
			}
		})
	}
	close(stopKiller)
	killer.Wait()
	wg.Wait()
	c.CloseIdleConnections()
	loadTook := time.Since(start)

	// Back to normal: the plugin answers again, and the host's resources
	// return near their baseline.
	if err := waitAnswering(url, h.proc, 10*time.Second); err != nil {
		return fmt.Errorf("after the soak: %w", err)
	}
	var after resources
	settle, err := pollUntil(30*time.Second, 500*time.Millisecond, h.proc, func() bool {
		after, err = hostResources(in, h.pid())
		return err == nil && after.within(base)
	})
	settled := err == nil

	// No acknowledged turn lost: the store has at least two messages (user
	// and reply) per answered request, in this host and after a SIGKILL of
	// the host and a restart.
	var ackedTurns int64
	for i := range acked {
		ackedTurns += acked[i].Load()
	}
	lost, err := lostTurns(url, acked)
	if err != nil {
		return err
	}
	h.kill()
	if h, err = in.startReady(20 * time.Second); err != nil {
		return fmt.Errorf("restart after SIGKILL: %w", err)
	}
	lostAfterCrash, err := lostTurns(url, acked)
	if err != nil {
		return err
	}

	total64 := counts.ok.Load() + counts.clearErr.Load() + counts.timeout.Load() + counts.bad.Load()
	how := fmt.Sprintf("%s open loop at %.0f msg/s over %d sessions (client timeout %s) while the HTTP plugin was SIGKILLed %d times at random 2–5 s intervals "+
		"(restart backoff 50 ms); not sent because 2048 were in flight: %d", loadTook.Round(time.Second), rate, sessions, clientTimeout, kills.Load(), counts.overflow.Load())
	r.t.add(row{
		Figure:   "soak: every request answered",
		How:      how,
		Result:   fmt.Sprintf("%d requests: %d ok, %d clear errors, %d hangs, %d bad", total64, counts.ok.Load(), counts.clearErr.Load(), counts.timeout.Load(), counts.bad.Load()),
		Baseline: "–",
		Goal:     fmt.Sprintf("%.2f%% ok; goal 0 hangs, 0 bad", 100*float64(counts.ok.Load())/float64(max(total64, 1))),
		Verdict:  judge(counts.timeout.Load() == 0 && counts.bad.Load() == 0 && counts.overflow.Load() == 0),
	})
	r.t.add(row{
		Figure:   "soak: acknowledged turns kept",
		How:      "per session, /status 'Messages' ≥ 2 × replies acknowledged with 200; checked in the running host, then after SIGKILL of the host and a restart",
		Result:   fmt.Sprintf("%d lost, %d after host SIGKILL + restart", lost, lostAfterCrash),
		Baseline: fmt.Sprintf("%d acknowledged", ackedTurns),
		Goal:     "goal 0 lost",
		Verdict:  judge(lost == 0 && lostAfterCrash == 0),
	})
	settleText := fmt.Sprintf("back within tolerance %s after the load", settle.Round(100*time.Millisecond))
	if !settled {
		settleText = "NOT back within tolerance 30 s after the load"
	}
	r.t.add(row{
		Figure:   "soak: host goroutines",
		How:      "go_goroutines from /metrics; baseline after a 2 s warm-up and 3 s idle; after = once the plugin answers again; " + settleText,
		Result:   strconv.Itoa(after.goroutines),
		Baseline: strconv.Itoa(base.goroutines),
		Goal:     fmt.Sprintf("goal ≤ baseline + %d", tolGoroutines),
		Verdict:  judge(after.goroutines <= base.goroutines+tolGoroutines),
	})
	r.t.add(row{
		Figure:   "soak: host file descriptors",
		How:      "entries in /proc/PID/fd (the bench's admin requests do not keep connections)",
		Result:   strconv.Itoa(after.fds),
		Baseline: strconv.Itoa(base.fds),
		Goal:     fmt.Sprintf("goal ≤ baseline + %d", tolFDs),
		Verdict:  judge(after.fds <= base.fds+tolFDs),
	})
	r.t.add(row{
		Figure: "soak: host RSS",
		How: fmt.Sprintf("VmRSS (anon %s → %s, file/mmap %s → %s)", fmtMiB(float64(base.mem.Anon)/1024), fmtMiB(float64(after.mem.Anon)/1024),
			fmtMiB(float64(base.mem.File)/1024), fmtMiB(float64(after.mem.File)/1024)),
		Result:   fmtMiB(float64(after.mem.RSS) / 1024),
		Baseline: fmtMiB(float64(base.mem.RSS) / 1024),
		Goal:     fmt.Sprintf("goal ≤ baseline + %s", fmtMiB(float64(tolRSS(base.mem.RSS))/1024)),
		Verdict:  judge(after.mem.RSS <= base.mem.RSS+tolRSS(base.mem.RSS)),
	})
	return nil
}

var messagesLine = regexp.MustCompile(`Messages: (\d+)`)

// lostTurns asks each session's /status and counts acknowledged turns the
// store does not have.
func lostTurns(url string, acked []atomic.Int64) (int64, error) {
	c := newLoadClient(1, 10*time.Second)
	defer c.CloseIdleConnections()
	var lost int64
	for i := range acked {
		reply, err := command(c, url, "soak"+strconv.Itoa(i), "/status")
		if err != nil {
			return 0, err
		}
		m := messagesLine.FindStringSubmatch(reply)
		if m == nil {
			return 0, fmt.Errorf("/status reply without a message count: %q", reply)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		if want := 2 * acked[i].Load(); n < want {
			lost += (want - n + 1) / 2
		}
	}
	return lost, nil
}

// command sends a chat command and returns the reply text.
func command(c *http.Client, url, session, text string) (string, error) {
	body, _ := json.Marshal(bareRequest{Session: session, Text: text})
	resp, err := c.Post(url, "application/json", strings.NewReader(string(body)))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	var out bareResponse
	if err := json.Unmarshal(b, &out); err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s %q: %d %s", session, text, resp.StatusCode, b)
	}
	return out.Reply, nil
}
