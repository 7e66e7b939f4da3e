package agent

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/host/provider"
)

// benchCache returns a cache and a spec on a real (never contacted)
// OpenAI-compatible provider, so agents hold what they hold in production.
func benchCache(b *testing.B, maxAgents int) (*cache, spec, func()) {
	p, err := provider.NewOpenAI(provider.Config{Name: "bench", Type: "openai", BaseURL: "http://127.0.0.1:9/v1"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ref := &providerRef{p: p, log: hclog.NewNullLogger()}
	sp := spec{ref: ref, model: "bench/m", remoteModel: "m", systemPrompt: "You are terse.", historyLimit: 40}
	c := newCache(maxAgents, time.Hour, time.Second, time.Now, hclog.NewNullLogger())
	return c, sp, func() {
		<-c.shutdown()
		c.wait()
		p.Close()
	}
}

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("discord:guild-%d:channel-%d", i/7, i)
	}
	return out
}

// BenchmarkCacheHit is acquire+release of a cached agent.
func BenchmarkCacheHit(b *testing.B) {
	c, sp, done := benchCache(b, 1024)
	defer func() { b.StopTimer(); done() }()
	ks := keys(1024)
	build := func(k string) func() (*Agent, error) { return func() (*Agent, error) { return testAgent(k, sp), nil } }
	for _, k := range ks {
		a, _ := c.acquire(k, sp, ReasonReload, build(k))
		c.release(a)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k := ks[i&1023]
		a, err := c.acquire(k, sp, ReasonReload, build(k))
		if err != nil {
			b.Fatal(err)
		}
		c.release(a)
	}
}

// BenchmarkCacheMiss builds a new agent per call, without eviction (the
// cache grows to b.N agents, so map growth is part of the cost).
func BenchmarkCacheMiss(b *testing.B) {
	c, sp, done := benchCache(b, 1<<30)
	defer func() { b.StopTimer(); done() }()
	ks := keys(b.N + 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := ks[i]
		a, err := c.acquire(k, sp, ReasonReload, func() (*Agent, error) { return testAgent(k, sp), nil })
		if err != nil {
			b.Fatal(err)
		}
		c.release(a)
	}
}

// BenchmarkCacheEviction is a miss on a full cache: build, evict the LRU
// agent and close it (off the message path: the close cost is included by
// waiting for every close at the end).
func BenchmarkCacheEviction(b *testing.B) {
	c, sp, done := benchCache(b, 128)
	defer done()
	ks := keys(b.N + 128)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N + 128 {
		k := ks[i]
		a, err := c.acquire(k, sp, ReasonReload, func() (*Agent, error) { return testAgent(k, sp), nil })
		if err != nil {
			b.Fatal(err)
		}
		c.release(a)
	}
	for c.stats().Closing > 0 {
		runtime.Gosched()
	}
	b.StopTimer()
	if st := c.stats(); st.Closed != st.Evictions {
		b.Fatalf("stats %+v", st)
	}
}

// BenchmarkIdleAgentMemory reports the heap held per idle cached agent
// (agent, provider client, LRU element and map entry).
func BenchmarkIdleAgentMemory(b *testing.B) {
	const n = 10000
	ks := keys(n)
	for b.Loop() {
		c, sp, done := benchCache(b, n)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, k := range ks {
			a, err := c.acquire(k, sp, ReasonReload, func() (*Agent, error) { return testAgent(k, sp), nil })
			if err != nil {
				b.Fatal(err)
			}
			c.release(a)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/agent")
		runtime.KeepAlive(c)
		done()
	}
}

// BenchmarkReplyEcho is a whole turn through the Service with the echo
// provider: load history, acquire the agent, reply, durable group commit.
// With 16×GOMAXPROCS goroutines over 256 sessions and the default cache,
// most turns miss the cache.
func BenchmarkReplyEcho(b *testing.B) {
	benchReplies(b, newTestService(b, echoConfig(), Options{}))
}

// BenchmarkReplyEchoCached is BenchmarkReplyEcho with room in the cache for
// every session, so that each turn after the first hits a cached agent: the
// steady state of a busy gateway.
func BenchmarkReplyEchoCached(b *testing.B) {
	cfg := echoConfig()
	cfg.MaxAgents = 256
	benchReplies(b, newTestService(b, cfg, Options{}))
}

// benchReplies drives s.Reply from 16×GOMAXPROCS goroutines over 256
// sessions and reports replies/s.
func benchReplies(b *testing.B, s *Service) {
	ks := keys(256)
	b.SetParallelism(16)
	b.ReportAllocs()
	var id atomic.Int64
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		k := ks[id.Add(1)%256]
		for pb.Next() {
			if _, err := s.Reply(context.Background(), k, "hello"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "replies/s")
}

func testAgent(key string, sp spec) *Agent {
	sp.ref.hold()
	return &Agent{key: key, spec: sp, ref: sp.ref, client: provider.NewClient(sp.ref.p)}
}
