package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppendTurnSerial is one writer: every append waits for its own
// fsync, the floor that group commit lifts.
func BenchmarkAppendTurnSerial(b *testing.B) {
	s := openTest(b, filepath.Join(b.TempDir(), FileName))
	defer s.Close()
	u, a := turn("hello there")
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		if err := s.AppendTurn(context.Background(), "k", 0, u, a); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
}

// BenchmarkAppendTurnGroupCommit is many sessions committing at once, as
// under load: durable appends per second with group commit.
func BenchmarkAppendTurnGroupCommit(b *testing.B) {
	s := openTest(b, filepath.Join(b.TempDir(), FileName))
	defer s.Close()
	u, a := turn("hello there")
	var id atomic.Int64
	b.SetParallelism(64)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		key := fmt.Sprint("s", id.Add(1))
		for pb.Next() {
			if err := s.AppendTurn(context.Background(), key, 0, u, a); err != nil {
				b.Error(err)
				return
			}
		}
	})
	el := time.Since(start)
	st := s.Stats()
	b.ReportMetric(float64(b.N)/el.Seconds(), "appends/s")
	b.ReportMetric(float64(st.Writes)/float64(max(st.Commits, 1)), "writes/commit")
}

// BenchmarkRSS10kSessions stores 10,000 sessions (5 turns each), reopens the
// store, reads every session's history and reports the process RSS.
func BenchmarkRSS10kSessions(b *testing.B) {
	for b.Loop() {
		path := filepath.Join(b.TempDir(), FileName)
		s := openTest(b, path)
		u, a := turn(strings.Repeat("a fairly ordinary chat message ", 4))
		const sessions, turns = 10000, 5
		errc := make(chan error, 256)
		var next atomic.Int64
		for range 256 {
			go func() {
				for {
					i := next.Add(1) - 1
					if i >= sessions {
						errc <- nil
						return
					}
					for range turns {
						if err := s.AppendTurn(context.Background(), fmt.Sprint("platform:chan:", i), 0, u, a); err != nil {
							errc <- err
							return
						}
					}
				}
			}()
		}
		for range 256 {
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
		runtime.GC()
		s = openTest(b, path)
		for i := range sessions {
			if _, h, err := s.History(fmt.Sprint("platform:chan:", i), 40); err != nil || len(h) != 2*turns {
				b.Fatalf("history %d: %d %v", i, len(h), err)
			}
		}
		runtime.GC()
		b.ReportMetric(rssMiB(), "MiB-RSS")
		fi, _ := os.Stat(path)
		b.ReportMetric(float64(fi.Size())/(1<<20), "MiB-file")
		s.Close()
	}
}

func rssMiB() float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return float64(kb) / 1024
		}
	}
	return -1
}
