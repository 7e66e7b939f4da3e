package pidlock

import (
	"errors"
	"testing"
	"time"
)

// BenchmarkTakeover measures the time from SIGKILL of a holder process to the next
// Acquire in this process succeeding: how long a crashed gateway keeps its successor
// waiting. Starting the holder is not timed.
func BenchmarkTakeover(b *testing.B) {
	dir := b.TempDir()
	retries := 0
	for b.Loop() {
		b.StopTimer()
		holder := startHelper(b, "acquire", helperEnv(dir))
		holder.waitLine(b, "HELD", 20*time.Second)
		b.StartTimer()

		holder.kill()
		var lock *Lock
		for {
			var err error
			if lock, err = Acquire(dir, Record{}, nil); err == nil {
				break
			}
			// The kernel drops the lock only once the killed process has exited; until
			// then a start correctly sees it held.
			if _, ok := errors.AsType[*HeldError](err); !ok {
				b.Fatal(err)
			}
			retries++
		}

		b.StopTimer()
		if err := lock.Release(); err != nil {
			b.Fatal(err)
		}
		holder.wait(b, 10*time.Second)
		b.StartTimer()
	}
	b.ReportMetric(float64(retries)/float64(b.N), "retries/op")
}
