package logsink

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stuck is a sink whose Write blocks until released.
type stuck struct {
	release chan struct{}
	mu      sync.Mutex
	b       strings.Builder
}

func (s *stuck) Write(p []byte) (int, error) {
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *stuck) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestStuckSinkDropsCountsAndReports(t *testing.T) {
	sink := &stuck{release: make(chan struct{})}
	w := New(sink, Options{Capacity: 4, ReportEvery: 10 * time.Millisecond})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 100 {
			fmt.Fprintf(w, "line %d\n", i)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Write blocked on a stuck sink")
	}
	// One line is in the sink's Write, Capacity wait: the rest is dropped.
	if d := w.Dropped(); d < 100-5 || d > 100-4 {
		t.Fatalf("dropped %d of 100 lines with capacity 4, want 95 or 96", d)
	}
	close(sink.release)
	w.Close(5 * time.Second)
	out := sink.String()
	if !strings.Contains(out, "line 0\n") || !strings.Contains(out, fmt.Sprintf("dropped_total=%d", w.Dropped())) {
		t.Fatalf("output lacks the first line or the drop report:\n%s", out)
	}
}

func TestCloseGivesUpOnAStuckSink(t *testing.T) {
	sink := &stuck{release: make(chan struct{})}
	w := New(sink, Options{})
	_, _ = io.WriteString(w, "x\n")
	start := time.Now()
	w.Close(50 * time.Millisecond)
	if time.Since(start) > 5*time.Second {
		t.Fatal("Close waited on a stuck sink")
	}
	close(sink.release) // lets the loop end, for goleak
	eventually := time.Now().Add(5 * time.Second)
	for {
		select {
		case <-w.done:
			return
		default:
		}
		if time.Now().After(eventually) {
			t.Fatal("loop did not end")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestJSONReport(t *testing.T) {
	w := &Writer{opts: Options{JSON: true, Name: "host"}}
	line := string(w.reportLine(3, 7))
	if !strings.Contains(line, `"dropped":3`) || !strings.Contains(line, `"@level":"warn"`) || !strings.HasSuffix(line, "\n") {
		t.Fatalf("report line %q", line)
	}
}
