package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// benchResult is one Go benchmark's runs: per run, value by unit
// ("ns/op", "appends/s", ...).
type benchResult []map[string]float64

// metric returns the sample of one unit over the runs.
func (b benchResult) metric(unit string) sample {
	var s sample
	for _, run := range b {
		if v, ok := run[unit]; ok {
			s = append(s, v)
		}
	}
	return s
}

var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

// goBench runs `go test -run ^$ -bench pattern` in pkg, one package at a
// time (-p 1) so that nothing else competes with it, and returns the
// results by benchmark name (without "Benchmark" and the -N suffix).
// Benchmarks that do not exist (yet) are simply absent from the map.
func goBench(pkg, pattern, benchtime string, count int) (map[string]benchResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	args := []string{"test", "-p", "1", "-run", "^$", "-bench", pattern, "-benchtime", benchtime,
		"-count", strconv.Itoa(count), "-benchmem", pkg}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = env.root
	out, err := cmd.CombinedOutput()
	res := map[string]benchResult{}
	for _, line := range strings.Split(string(out), "\n") {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		f := strings.Fields(m[3])
		run := map[string]float64{}
		for i := 0; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				run[f[i+1]] = v
			}
		}
		res[m[1]] = append(res[m[1]], run)
	}
	if err != nil && len(res) == 0 {
		if strings.Contains(string(out), "no test files") || strings.Contains(string(out), "matched no packages") {
			return res, nil
		}
		return res, fmt.Errorf("go %s: %v: %s", strings.Join(args, " "), err, oneLine(string(out)))
	}
	return res, nil
}

// commits: durable transcript appends with group commit, from the store's
// Go benchmark, and replies/s through the HTTP API with many sessions
// (each reply is one durable turn).
func (r *runner) commits() error {
	res, err := goBench("./host/store/", "^BenchmarkAppendTurn(Serial|GroupCommit)$", r.benchtime("2s"), r.runs(3))
	if err != nil {
		return err
	}
	group, serial := res["AppendTurnGroupCommit"], res["AppendTurnSerial"]
	if len(group) > 0 {
		g, s := group.metric("appends/s"), serial.metric("appends/s")
		r.t.add(row{
			Figure: "durable commits (store)",
			How: fmt.Sprintf("go test -bench AppendTurnGroupCommit ./host/store: 64 sessions appending a turn at once, each waiting for its fsync; "+
				"%s writes per commit; baseline: AppendTurnSerial, one writer, one fsync per append", group.metric("writes/commit").format(fmtX)),
			Result:   g.format(fmtRate),
			Baseline: s.format(fmtRate),
			Goal:     fmt.Sprintf("%.1f× serial; goal ≥ 5,000/s", g.median()/s.median()),
			Verdict:  judge(g.median() >= 5000),
		})
	} else {
		r.t.add(row{Figure: "durable commits (store)", How: "host/store has no BenchmarkAppendTurnGroupCommit (yet)", Result: "not present", Baseline: "–", Goal: "goal ≥ 5,000/s", Verdict: info})
	}
	if err := r.pgCommits(group); err != nil {
		return err
	}

	// Through the HTTP API: each reply is committed durably before it is
	// sent, so replies/s with many sessions is bounded by durable commits.
	p, err := startPair()
	if err != nil {
		return err
	}
	defer p.close()
	const clients = 64
	closedLoop(p.in.url(0), clients, r.dur(time.Second), "d")
	var rates sample
	var errs int
	for range r.runs(3) {
		l := closedLoop(p.in.url(0), clients, r.dur(3*time.Second), "d")
		rates = append(rates, l.rate())
		errs += l.errs
	}
	r.t.add(row{
		Figure:   fmt.Sprintf("durable turns via HTTP (C=%d)", clients),
		How:      fmt.Sprintf("closed loop, %d clients with a session each: every reply is a turn committed (group commit, fsync) before it is sent; %d runs; errors %d", clients, r.runs(3), errs),
		Result:   rates.format(fmtRate),
		Baseline: "–",
		Goal:     "goal ≥ 5,000/s (bounded here by the whole message path)",
		Verdict:  judge(rates.median() >= 5000 && errs == 0),
	})
	return nil
}

// benchtime returns d, or a third of it under -quick.
func (r *runner) benchtime(d string) string {
	if !r.opts.quick {
		return d
	}
	v, err := time.ParseDuration(d)
	if err != nil {
		return d
	}
	return (v / 3).String()
}

// goBenchmarks: the pidlock, agent and store Go benchmarks.
func (r *runner) goBenchmarks() error {
	lock, err := goBench("./host/pidlock/", "^BenchmarkTakeover$", "20x", r.runs(3))
	if err != nil {
		return err
	}
	if t := lock["Takeover"]; len(t) > 0 {
		v := t.metric("ns/op")
		for i := range v {
			v[i] /= 1e6
		}
		r.t.add(row{
			Figure:   "pidlock takeover (Go bench)",
			How:      "go test -bench Takeover ./host/pidlock: SIGKILL a helper process holding the lock → Acquire in the bench process succeeds (no exec); mean of 20 per run",
			Result:   v.format(fmtMs),
			Baseline: "–",
			Goal:     "goal ≤ 50 ms",
			Verdict:  judge(v.median() <= 50),
		})
	}

	ag, err := goBench("./host/agent/", "^Benchmark(CacheHit|CacheMiss|CacheEviction|IdleAgentMemory|ReplyEcho)$", r.benchtime("500ms"), r.runs(3))
	if err != nil {
		return err
	}
	for _, b := range []struct{ name, what string }{
		{"CacheHit", "acquire + release of a cached agent"},
		{"CacheMiss", "build a new agent (OpenAI client) on a miss, no eviction"},
		{"CacheEviction", "miss on a full cache: build, evict the LRU agent and close it"},
	} {
		if res := ag[b.name]; len(res) > 0 {
			r.t.add(row{
				Figure:   "agent cache " + strings.TrimPrefix(b.name, "Cache") + " (Go bench)",
				How:      "go test -bench " + b.name + " ./host/agent: " + b.what,
				Result:   res.metric("ns/op").format(func(v float64) string { return fmt.Sprintf("%.0f ns", v) }),
				Baseline: "–",
				Goal:     fmt.Sprintf("%.0f B, %.0f allocs/op", res.metric("B/op").median(), res.metric("allocs/op").median()),
				Verdict:  info,
			})
		}
	}
	if res := ag["IdleAgentMemory"]; len(res) > 0 {
		v := res.metric("bytes/agent")
		for i := range v {
			v[i] /= 1024
		}
		r.t.add(row{
			Figure:   "heap per idle agent (Go bench)",
			How:      "go test -bench IdleAgentMemory ./host/agent: live heap per cached agent (agent, OpenAI client, LRU entry), 10,000 agents",
			Result:   v.format(fmtKiB),
			Baseline: "–",
			Goal:     "goal ≤ 16 KiB/agent",
			Verdict:  judge(v.median() <= 16),
		})
	}
	if res := ag["ReplyEcho"]; len(res) > 0 {
		r.t.add(row{
			Figure:   "agent turn in-process (Go bench)",
			How:      "go test -bench ReplyEcho ./host/agent: Service.Reply with the echo provider, 16×GOMAXPROCS goroutines over 256 sessions: history load, agent, durable group commit",
			Result:   res.metric("replies/s").format(fmtRate),
			Baseline: "–",
			Goal:     fmt.Sprintf("%.0f allocs, %.0f B per turn", res.metric("allocs/op").median(), res.metric("B/op").median()),
			Verdict:  info,
		})
	}

	st, err := goBench("./host/store/", "^BenchmarkRSS10kSessions$", "1x", r.runs(3))
	if err != nil {
		return err
	}
	if res := st["RSS10kSessions"]; len(res) > 0 {
		v := res.metric("MiB-RSS")
		r.t.add(row{
			Figure:   "store RSS, 10k sessions (Go bench)",
			How:      fmt.Sprintf("go test -bench RSS10kSessions ./host/store: 10,000 sessions × 5 turns stored, store reopened, every history read; RSS of the test process; file %s", res.metric("MiB-file").format(fmtMiB)),
			Result:   v.format(fmtMiB),
			Baseline: "–",
			Goal:     "goal ≤ 100 MiB",
			Verdict:  judge(v.median() <= 100),
		})
	}
	return nil
}

// pgCommits: the same benchmarks against the PostgreSQL store, on a
// throwaway server of this machine with fsync on (pgtest), beside bbolt's.
func (r *runner) pgCommits(bolt benchResult) error {
	res, err := goBench("./host/store/pgstore/", "^BenchmarkAppendTurn(Serial|GroupCommit)$", r.benchtime("2s"), r.runs(3))
	if err != nil {
		return err
	}
	group, serial := res["AppendTurnGroupCommit"], res["AppendTurnSerial"]
	if len(group) == 0 {
		r.t.add(row{Figure: "durable commits (PostgreSQL store)", How: "host/store/pgstore has no BenchmarkAppendTurnGroupCommit", Result: "not present", Baseline: "–", Goal: "goal ≥ 5,000/s", Verdict: info})
		return nil
	}
	g, s := group.metric("appends/s"), serial.metric("appends/s")
	vsBolt := "–"
	if len(bolt) > 0 {
		vsBolt = fmt.Sprintf("%.2f× bbolt's %s", g.median()/bolt.metric("appends/s").median(), bolt.metric("appends/s").format(fmtRate))
	}
	r.t.add(row{
		Figure: "durable commits (PostgreSQL store)",
		How: fmt.Sprintf("go test -bench AppendTurnGroupCommit ./host/store/pgstore: the bbolt benchmark against PostgreSQL (a local server over its unix socket, fsync on, synchronous_commit on): 64 sessions appending a turn at once, each waiting for its commit; "+
			"%s writes per transaction, their statements pipelined; baseline: AppendTurnSerial, one commit per append", group.metric("writes/commit").format(fmtX)),
		Result:   g.format(fmtRate),
		Baseline: s.format(fmtRate),
		Goal:     fmt.Sprintf("%.1f× serial, %s; goal ≥ 5,000/s", g.median()/s.median(), vsBolt),
		Verdict:  judge(g.median() >= 5000),
	})
	return nil
}
