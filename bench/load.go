package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// outcome classifies one request.
type outcome int

const (
	// outOK: 200 with the expected reply.
	outOK outcome = iota
	// outClearErr: an HTTP error status with a JSON error, or the
	// connection refused or reset: the client knows at once it failed.
	outClearErr
	// outTimeout: no answer within the client timeout (a hang).
	outTimeout
	// outBad: anything else (wrong reply, non-JSON error).
	outBad
)

// newLoadClient is the generator's HTTP client: keep-alive, up to conns
// idle connections, every request bounded by timeout.
func newLoadClient(conns int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			DisableCompression:  true,
			IdleConnTimeout:     30 * time.Second,
			DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
		},
	}
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// send posts one message and classifies the answer.
func send(c *http.Client, url, session, text string) outcome {
	body := bufPool.Get().(*bytes.Buffer)
	body.Reset()
	_ = json.NewEncoder(body).Encode(bareRequest{Session: session, Text: text})
	defer bufPool.Put(body)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body.Bytes()))
	if err != nil {
		return outBad
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		noteError(err.Error())
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return outTimeout
		}
		return outClearErr
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return outTimeout
		}
		return outClearErr
	}
	var out bareResponse
	if err := json.Unmarshal(b, &out); err != nil {
		noteError(fmt.Sprintf("%d %q", resp.StatusCode, b))
		return outBad
	}
	if resp.StatusCode == http.StatusOK && out.Reply == "echo: "+text {
		return outOK
	}
	noteError(fmt.Sprintf("%d %q", resp.StatusCode, b))
	if resp.StatusCode >= 400 && out.Error != "" {
		return outClearErr
	}
	return outBad
}

var (
	errMu      sync.Mutex
	errSamples = map[string]int{}
)

// noteError counts an error by its text (numbers masked), for the report.
func noteError(s string) {
	s = digits.ReplaceAllString(s, "N")
	errMu.Lock()
	if _, ok := errSamples[s]; ok || len(errSamples) < 20 {
		errSamples[s]++
	}
	errMu.Unlock()
}

var digits = regexp.MustCompile(`[0-9]+`)

// takeErrors returns and forgets the errors noted so far.
func takeErrors() map[string]int {
	errMu.Lock()
	defer errMu.Unlock()
	m := errSamples
	errSamples = map[string]int{}
	return m
}

// postMessage sends one message and reports whether it was answered.
func postMessage(c *http.Client, url, session, text string) (bool, outcome) {
	o := send(c, url, session, text)
	return o == outOK, o
}

// loopResult is the outcome of a load run.
type loopResult struct {
	ok, errs int
	elapsed  time.Duration
}

func (r loopResult) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

// closedLoop runs clients goroutines, each sending its next message as soon
// as the last is answered, for d. Client i uses session prefix+i.
func closedLoop(url string, clients int, d time.Duration, prefix string) loopResult {
	c := newLoadClient(clients, 10*time.Second)
	defer c.CloseIdleConnections()
	var ok, errs atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		wg.Go(func() {
			session := prefix + strconv.Itoa(i)
			for n := 0; !stop.Load(); n++ {
				if send(c, url, session, "hello "+strconv.Itoa(n)) == outOK {
					ok.Add(1)
				} else {
					errs.Add(1)
				}
			}
		})
	}
	time.Sleep(d)
	stop.Store(true)
	// Count only what was answered within d: the stragglers finish below.
	r := loopResult{ok: int(ok.Load()), errs: int(errs.Load()), elapsed: time.Since(start)}
	wg.Wait()
	return r
}

// openResult is the outcome of an open-loop run.
type openResult struct {
	lat             []time.Duration
	errs, overflown int
}

// percentile returns the p-th percentile (0..100) of the latencies.
func (r openResult) percentile(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	s := slices.Clone(r.lat)
	slices.Sort(s)
	i := int(p / 100 * float64(len(s)))
	return s[min(i, len(s)-1)]
}

// openLoop sends with c (its connections stay open across runs, so a run
// measures requests, not dials) rate messages per second for d, each at its scheduled
// time whether or not earlier ones were answered, over sessions sessions
// in turn. Latency counts from the scheduled time, so a stall shows up in
// the figures instead of slowing the generator (no coordinated omission).
func openLoop(c *http.Client, url string, rate float64, d time.Duration, sessions int) openResult {
	const maxInFlight = 2048
	var mu sync.Mutex
	res := openResult{lat: make([]time.Duration, 0, int(rate*d.Seconds())+1)}
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	total := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	for i := 0; i < total; i++ {
		at := start.Add(time.Duration(i) * interval)
		if w := time.Until(at); w > 0 {
			time.Sleep(w)
		}
		select {
		case sem <- struct{}{}:
		default:
			res.overflown++
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			o := send(c, url, "o"+strconv.Itoa(i%sessions), "hello "+strconv.Itoa(i))
			took := time.Since(at)
			mu.Lock()
			if o == outOK {
				res.lat = append(res.lat, took)
			} else {
				res.errs++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return res
}
