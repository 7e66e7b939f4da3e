// Package logsink is the host's log output: a bounded buffer in front of
// the real sink (stderr, a pipe to journald), so that logging never blocks.
// When the sink is stuck (a pipe nobody reads) lines are dropped and
// counted, never waited for: the message path and the main loop go on.
package logsink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCapacity is how many lines wait for a slow sink before new ones
// are dropped.
const DefaultCapacity = 512

// DefaultReportEvery is how often a "dropped N log lines" line is written
// while lines are being dropped.
const DefaultReportEvery = 10 * time.Second

// Options configure a Writer.
type Options struct {
	// Capacity is the number of lines buffered; DefaultCapacity if 0.
	Capacity int
	// ReportEvery is how often drops are reported; DefaultReportEvery if 0.
	ReportEvery time.Duration
	// JSON writes the report line as JSON (log_format = "json").
	JSON bool
	// Name is the logger name the report line carries; "host" if empty.
	Name string
}

// Writer is an io.Writer that never blocks: each Write (one log line, as
// hclog writes them) is queued for the sink, or dropped and counted when
// the queue is full.
type Writer struct {
	out   io.Writer
	opts  Options
	lines chan []byte

	dropped atomic.Uint64

	closeOnce sync.Once
	quit      chan struct{}
	done      chan struct{}
}

// New starts a Writer in front of out. Close it to flush.
func New(out io.Writer, opts Options) *Writer {
	if opts.Capacity <= 0 {
		opts.Capacity = DefaultCapacity
	}
	if opts.ReportEvery <= 0 {
		opts.ReportEvery = DefaultReportEvery
	}
	if opts.Name == "" {
		opts.Name = "host"
	}
	w := &Writer{out: out, opts: opts, lines: make(chan []byte, opts.Capacity),
		quit: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w
}

// Write implements io.Writer. It never blocks and never fails.
func (w *Writer) Write(p []byte) (int, error) {
	select {
	case w.lines <- bytes.Clone(p):
	default:
		w.dropped.Add(1)
	}
	return len(p), nil
}

// Dropped returns how many lines were dropped so far.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Close stops the writer after writing what is queued, waiting at most
// timeout for a stuck sink.
func (w *Writer) Close(timeout time.Duration) {
	w.closeOnce.Do(func() { close(w.quit) })
	select {
	case <-w.done:
	case <-time.After(timeout):
	}
}

func (w *Writer) loop() {
	defer close(w.done)
	t := time.NewTicker(w.opts.ReportEvery)
	defer t.Stop()
	var reported uint64
	report := func() {
		if n := w.dropped.Load(); n > reported {
			_, _ = w.out.Write(w.reportLine(n-reported, n))
			reported = n
		}
	}
	for {
		select {
		case p := <-w.lines:
			_, _ = w.out.Write(p)
		case <-t.C:
			report()
		case <-w.quit:
			for {
				select {
				case p := <-w.lines:
					_, _ = w.out.Write(p)
				default:
					report()
					return
				}
			}
		}
	}
}

// reportLine is the "dropped N log lines" line, in the host's log format.
func (w *Writer) reportLine(n, total uint64) []byte {
	now := time.Now()
	msg := fmt.Sprintf("dropped %d log lines: the log output is not keeping up", n)
	if w.opts.JSON {
		b, _ := json.Marshal(map[string]any{
			"@level": "warn", "@message": msg, "@module": w.opts.Name,
			"@timestamp": now.Format("2006-01-02T15:04:05.000000Z07:00"),
			"dropped":    n, "dropped_total": total,
		})
		return append(b, '\n')
	}
	return fmt.Appendf(nil, "%s [WARN]  %s: %s: dropped=%d dropped_total=%d\n",
		now.Format("2006-01-02T15:04:05.000Z0700"), w.opts.Name, msg, n, total)
}
