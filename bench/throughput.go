package main

import (
	"fmt"
	"time"
)

// pair is the gateway (one HTTP platform) and the bare baseline server,
// both running, both answering.
type pair struct {
	in   *install
	host *host
	bare *bare
	// plugin is the HTTP plugin's PID.
	plugin int
}

func startPair() (*pair, error) {
	return startPairWith(installOpts{platforms: 1, maxAgents: 4096})
}

// startPairWith is startPair with the gateway configured by o.
func startPairWith(o installOpts) (*pair, error) {
	in, err := newInstall(o)
	if err != nil {
		return nil, err
	}
	h, err := in.startReady(20 * time.Second)
	if err != nil {
		return nil, err
	}
	b, err := startBare()
	if err != nil {
		h.stop(10 * time.Second)
		return nil, err
	}
	st, err := in.status()
	if err != nil {
		h.stop(10 * time.Second)
		b.kill()
		return nil, err
	}
	return &pair{in: in, host: h, bare: b, plugin: st.pluginPID(0)}, nil
}

func (p *pair) close() {
	p.host.stop(10 * time.Second)
	p.bare.kill()
}

// throughput: messages/s closed-loop, gateway vs bare, alternated.
func (r *runner) throughput() error {
	p, err := startPair()
	if err != nil {
		return err
	}
	defer p.close()
	// A second gateway with store { sync = "100ms" }, in the same rounds.
	lazy, err := startPairWith(installOpts{platforms: 1, maxAgents: 4096, sync: "100ms"})
	if err != nil {
		return err
	}
	defer lazy.close()
	c := r.opts.clients
	gwURL, bareURL, lazyURL := p.in.url(0), p.bare.url(), lazy.in.url(0)
	closedLoop(gwURL, c, r.dur(time.Second), "w")
	closedLoop(bareURL, c, r.dur(time.Second), "w")
	closedLoop(lazyURL, c, r.dur(time.Second), "w")
	var lazyRate, lazyRatio sample
	var lazyErrs int

	rounds, d := r.runs(4), r.dur(4*time.Second)
	var gw, bs, ratio sample
	var cpuHost, cpuPlugin, cpuGen, cpuBare, cpuGenBare sample
	var gwErrs, bareErrs int
	for range rounds {
		h0, p0, s0 := cpuSeconds(p.host.pid()), cpuSeconds(p.plugin), selfCPUSeconds()
		g := closedLoop(gwURL, c, d, "t")
		h1, p1, s1 := cpuSeconds(p.host.pid()), cpuSeconds(p.plugin), selfCPUSeconds()
		b0 := cpuSeconds(p.bare.pid())
		b := closedLoop(bareURL, c, d, "t")
		b1, s2 := cpuSeconds(p.bare.pid()), selfCPUSeconds()
		l := closedLoop(lazyURL, c, d, "t")
		lazyRate, lazyRatio, lazyErrs = append(lazyRate, l.rate()), append(lazyRatio, l.rate()/b.rate()), lazyErrs+l.errs
		gw, bs = append(gw, g.rate()), append(bs, b.rate())
		ratio = append(ratio, g.rate()/b.rate())
		gwErrs, bareErrs = gwErrs+g.errs, bareErrs+b.errs
		n, nb := float64(max(g.ok, 1)), float64(max(b.ok, 1))
		cpuHost = append(cpuHost, (h1-h0)/n*1e6)
		cpuPlugin = append(cpuPlugin, (p1-p0)/n*1e6)
		cpuGen = append(cpuGen, (s1-s0)/n*1e6)
		cpuBare = append(cpuBare, (b1-b0)/nb*1e6)
		cpuGenBare = append(cpuGenBare, (s2-s1)/nb*1e6)
		fmt.Fprintf(stderr, "    round: gateway %.0f/s (%d errors), sync=100ms %.0f/s (%d errors), bare %.0f/s (%d errors)\n", g.rate(), g.errs, l.rate(), l.errs, b.rate(), b.errs)
	}
	r.gwMax = gw.median()
	r.t.add(row{
		Figure: fmt.Sprintf("throughput, sync = always (C=%d)", c),
		How: fmt.Sprintf("closed loop, %d clients with a session each, POST /v1/messages → HTTP plugin → protocol 2 stream → router → echo agent → turn fsynced (group commit) → reply; "+
			"baseline: a bare net/http server process answering the same JSON; same generator, A B alternated ×%d, %s each; errors: gateway %d, bare %d",
			c, rounds, d.Round(100*time.Millisecond), gwErrs, bareErrs),
		Result:   gw.format(fmtRate),
		Baseline: bs.format(fmtRate),
		Goal:     "ratio " + ratio.format(fmtX) + "; goal ≥ 0.35",
		Verdict:  judge(ratio.median() >= 0.35 && gwErrs == 0),
	})
	r.t.add(row{
		Figure: fmt.Sprintf("throughput, sync = 100ms (C=%d)", c),
		How: fmt.Sprintf("the same with store { sync = \"100ms\" } (turn written before the reply, fsynced within 100 ms), a second gateway in the same rounds; errors %d",
			lazyErrs),
		Result:   lazyRate.format(fmtRate),
		Baseline: bs.format(fmtRate),
		Goal:     "ratio " + lazyRatio.format(fmtX) + "; goal ≥ 0.5",
		Verdict:  judge(lazyRatio.median() >= 0.5 && lazyErrs == 0),
	})
	r.t.add(row{
		Figure:   "CPU per message",
		How:      "user+system CPU from /proc/PID/stat over the throughput rounds, divided by the messages answered; generator = this bench process",
		Result:   fmt.Sprintf("host %s + plugin %s (generator %s)", cpuHost.format(fmtUs), cpuPlugin.format(fmtUs), fmtUs(cpuGen.median())),
		Baseline: fmt.Sprintf("bare %s (generator %s)", cpuBare.format(fmtUs), fmtUs(cpuGenBare.median())),
		Goal:     fmt.Sprintf("gateway/bare %.1f×; before protocol 2: host 196 µs + plugin 127 µs", (cpuHost.median()+cpuPlugin.median())/cpuBare.median()),
		Verdict:  info,
	})
	return nil
}

// latency: open loop at half the gateway's throughput, gateway vs bare.
func (r *runner) latency() error {
	p, err := startPair()
	if err != nil {
		return err
	}
	defer p.close()
	gwURL, bareURL := p.in.url(0), p.bare.url()
	if r.gwMax == 0 {
		closedLoop(gwURL, r.opts.clients, r.dur(time.Second), "w")
		r.gwMax = closedLoop(gwURL, r.opts.clients, r.dur(3*time.Second), "t").rate()
	}
	rate := r.gwMax / 2
	const sessions = 64
	gc, bc := newLoadClient(256, 10*time.Second), newLoadClient(256, 10*time.Second)
	defer gc.CloseIdleConnections()
	defer bc.CloseIdleConnections()
	openLoop(gc, gwURL, rate, r.dur(2*time.Second), sessions)
	openLoop(bc, bareURL, rate, r.dur(2*time.Second), sessions)

	rounds, d := r.runs(3), r.dur(5*time.Second)
	var g50, g99, g999, b50, b99, b999, added sample
	var errs, bareErrs, overflow int
	for range rounds {
		g := openLoop(gc, gwURL, rate, d, sessions)
		b := openLoop(bc, bareURL, rate, d, sessions)
		errs, bareErrs, overflow = errs+g.errs, bareErrs+b.errs, overflow+g.overflown+b.overflown
		g50, g99, g999 = append(g50, ms(g.percentile(50))), append(g99, ms(g.percentile(99))), append(g999, ms(g.percentile(99.9)))
		b50, b99, b999 = append(b50, ms(b.percentile(50))), append(b99, ms(b.percentile(99))), append(b999, ms(b.percentile(99.9)))
		added = append(added, ms(g.percentile(99)-b.percentile(99)))
		fmt.Fprintf(stderr, "    round: gateway p50 %.2f p99 %.2f p99.9 %.2f ms; bare p50 %.2f p99 %.2f p99.9 %.2f ms\n",
			g50[len(g50)-1], g99[len(g99)-1], g999[len(g999)-1], b50[len(b50)-1], b99[len(b99)-1], b999[len(b999)-1])
	}
	how := fmt.Sprintf("open loop at %.0f msg/s (half the gateway's throughput), %d sessions in turn, latency from the scheduled send time; "+
		"gateway and bare alternated ×%d, %s each; errors: gateway %d, bare %d, over 2048 in flight %d", rate, sessions, rounds, d.Round(100*time.Millisecond), errs, bareErrs, overflow)
	r.t.add(row{Figure: "latency p50", How: how, Result: g50.format(fmtMs), Baseline: b50.format(fmtMs),
		Goal: "added " + fmtMs(g50.median()-b50.median()), Verdict: info})
	r.t.add(row{Figure: "latency p99", Result: g99.format(fmtMs), Baseline: b99.format(fmtMs),
		Goal: "added " + added.format(fmtMs) + "; goal ≤ 1 ms", Verdict: judge(added.median() <= 1 && errs == 0)})
	r.t.add(row{Figure: "latency p99.9", Result: g999.format(fmtMs), Baseline: b999.format(fmtMs),
		Goal: "added " + fmtMs(g999.median()-b999.median()), Verdict: info})
	return nil
}
