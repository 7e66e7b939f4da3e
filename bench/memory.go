package main

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// memRun is one host run of the memory section.
type memRun struct {
	idleHost, idlePlugin memInfo
	after                memInfo // host after driving the sessions
	restarted            memInfo // host idle after a restart on the same store
	agents               int
	errs                 int
}

// memory: idle RSS of host and plugin; host RSS per cached agent (a host
// that caches every session against one that caches the default 128,
// both driven through the same sessions); host RSS with the sessions stored.
func (r *runner) memory() error {
	n := 10000
	if r.opts.quick {
		n = 2000
	}
	pairs := r.runs(2)
	var idleHost, idlePlugin, idleBare, perAgent, stored, restarted sample
	var agentsA, agentsB, errs int
	for range pairs {
		a, err := r.memoryRun(n, n*10, false)
		if err != nil {
			return err
		}
		b, err := r.memoryRun(n, 128, true)
		if err != nil {
			return err
		}
		for _, m := range []memRun{a, b} {
			idleHost = append(idleHost, float64(m.idleHost.RSS)/1024)
			idlePlugin = append(idlePlugin, float64(m.idlePlugin.RSS)/1024)
			errs += m.errs
		}
		agentsA, agentsB = a.agents, b.agents
		if d := a.agents - b.agents; d > 0 {
			perAgent = append(perAgent, float64(a.after.RSS-b.after.RSS)/float64(d))
		}
		stored = append(stored, float64(b.after.RSS)/1024)
		restarted = append(restarted, float64(b.restarted.RSS)/1024)
		bs, err := startBare()
		if err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
		if m, err := memOf(bs.pid()); err == nil {
			idleBare = append(idleBare, float64(m.RSS)/1024)
		}
		bs.kill()
	}
	r.t.add(row{
		Figure:   "RSS idle: host",
		How:      "VmRSS from /proc/PID/status 1 s after /readyz, one HTTP platform, nothing sent yet; baseline: the bare Go HTTP server process idle",
		Result:   idleHost.format(fmtMiB),
		Baseline: idleBare.format(fmtMiB),
		Goal:     fmt.Sprintf("%.1f× baseline", idleHost.median()/idleBare.median()),
		Verdict:  info,
	})
	r.t.add(row{
		Figure:   "RSS idle: HTTP plugin",
		How:      "VmRSS of the plugin process, same moment",
		Result:   idlePlugin.format(fmtMiB),
		Baseline: idleBare.format(fmtMiB),
		Goal:     fmt.Sprintf("%.1f× baseline", idlePlugin.median()/idleBare.median()),
		Verdict:  info,
	})
	r.t.add(row{
		Figure: "RSS per cached agent",
		How: fmt.Sprintf("%d distinct sessions, one message each, 16 clients; host A caches all (%d agents), host B max_agents = 128 (%d agents), same store work; "+
			"(VmRSS A − VmRSS B) / (agents A − agents B), 2 s after the load; A B ×%d; errors %d", n, agentsA, agentsB, pairs, errs),
		Result:   perAgent.format(fmtKiB) + fmt.Sprintf(" = %s per 1,000", fmtMiB(perAgent.median()*1000/1024)),
		Baseline: "–",
		Goal:     "goal ≤ 16 KiB/agent",
		Verdict:  judge(len(perAgent) > 0 && perAgent.median() <= 16 && errs == 0),
	})
	r.t.add(row{
		Figure: fmt.Sprintf("RSS with %d stored sessions", n),
		How: fmt.Sprintf("host B right after storing %d sessions (max_agents = 128); idle after a restart on that store: %s",
			n, restarted.format(fmtMiB)),
		Result:   stored.format(fmtMiB),
		Baseline: idleHost.format(fmtMiB) + " (idle, empty)",
		Goal:     "goal ≤ 100 MiB",
		Verdict:  judge(stored.median() <= 100),
	})
	return nil
}

// memoryRun starts a host with max_agents, measures it idle, drives n
// sessions through it, measures again, and (when restart) measures it idle
// again after a restart on the same store.
func (r *runner) memoryRun(n, maxAgents int, restart bool) (memRun, error) {
	var m memRun
	in, err := newInstall(installOpts{platforms: 1, maxAgents: maxAgents})
	if err != nil {
		return m, err
	}
	h, err := in.startReady(20 * time.Second)
	if err != nil {
		return m, err
	}
	defer func() { h.stop(10 * time.Second) }()
	time.Sleep(time.Second)
	st, err := in.status()
	if err != nil {
		return m, err
	}
	if m.idleHost, err = memOf(h.pid()); err != nil {
		return m, err
	}
	if m.idlePlugin, err = memOf(st.pluginPID(0)); err != nil {
		return m, err
	}
	ok, errs := driveSessions(in.url(0), n, 16, "m")
	m.errs = errs
	if ok == 0 {
		return m, fmt.Errorf("no session was answered")
	}
	time.Sleep(2 * time.Second)
	if m.after, err = memOf(h.pid()); err != nil {
		return m, err
	}
	if st, err = in.status(); err != nil {
		return m, err
	}
	m.agents = st.Cache.Agents
	if restart {
		h.stop(10 * time.Second)
		if h, err = in.startReady(20 * time.Second); err != nil {
			return m, err
		}
		time.Sleep(time.Second)
		if m.restarted, err = memOf(h.pid()); err != nil {
			return m, err
		}
	}
	return m, nil
}

// driveSessions sends one message to each of n sessions prefix0..prefixN-1
// from clients concurrent clients.
func driveSessions(url string, n, clients int, prefix string) (ok, errs int) {
	c := newLoadClient(clients, 10*time.Second)
	defer c.CloseIdleConnections()
	var next, okN, errN atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if send(c, url, prefix+strconv.Itoa(i), "hello") == outOK {
					okN.Add(1)
				} else {
					errN.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(okN.Load()), int(errN.Load())
}
