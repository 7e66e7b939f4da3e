package main

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plughost/gateway/host/config"
	"github.com/plughost/gateway/host/gateway"
)

// BenchmarkMessagePath runs the host in this process (the HTTP plugin is
// still its own process, from bin/plugins) and sends b.N messages through
// it from 16 clients, so that `go test -cpuprofile` shows where the host's
// time goes on the message path:
//
//	make build && go test -run '^$' -bench MessagePath -benchtime 20000x \
//	    -cpuprofile /tmp/host.cpu ./bench && go tool pprof -top /tmp/host.cpu
func BenchmarkMessagePath(b *testing.B) {
	if err := setupEnv("bin"); err != nil {
		b.Skip(err)
	}
	defer os.RemoveAll(env.tmp)
	in, err := newInstall(installOpts{platforms: 1, maxAgents: 4096})
	if err != nil {
		b.Fatal(err)
	}
	cfg, diags := config.Load(in.config)
	if diags.HasErrors() {
		b.Fatal(config.FormatDiagnostics(diags))
	}
	h, err := gateway.Start(gateway.Options{Config: cfg})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	url := in.url(0)
	if err := waitAnswering(url, nil, 20*time.Second); err != nil {
		b.Fatal(err)
	}
	const clients = 16
	c := newLoadClient(clients, 10*time.Second)
	defer c.CloseIdleConnections()
	var next, errs atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			session := "p" + strconv.Itoa(i)
			for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
				if send(c, url, session, "hello "+strconv.FormatInt(n, 10)) != outOK {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	if errs.Load() > 0 {
		b.Errorf("%d messages not answered", errs.Load())
	}
}
