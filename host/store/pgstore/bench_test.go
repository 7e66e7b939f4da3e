package pgstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/host/store/pgstore"
)

func openBench(b *testing.B) *pgstore.Store {
	b.Helper()
	s, err := pgstore.Open(context.Background(), pg.NewDatabase(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

func benchTurn() (store.Message, store.Message) {
	now := time.Now()
	return store.Message{Role: "user", Content: "hello there", Time: now}, store.Message{Role: "assistant", Content: "re: hello there", Time: now}
}

// BenchmarkAppendTurnSerial is one writer: every append waits for its own
// commit (WAL flush), the floor that group commit lifts. The same
// benchmark as the bbolt store's, against a durable server (fsync on).
func BenchmarkAppendTurnSerial(b *testing.B) {
	s := openBench(b)
	u, a := benchTurn()
	start := time.Now()
	for b.Loop() {
		if err := s.AppendTurn(context.Background(), "k", 0, u, a); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
}

// BenchmarkAppendTurnGroupCommit is 64 sessions committing at once:
// durable appends per second with group commit.
func BenchmarkAppendTurnGroupCommit(b *testing.B) {
	s := openBench(b)
	u, a := benchTurn()
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
