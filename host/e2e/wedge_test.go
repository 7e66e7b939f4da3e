package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plughost/gateway/host/provider/providertest"
)

// postRaw posts body to the HTTP platform at addr and returns the whole
// response (status, headers, decoded body).
func postRaw(t testing.TB, addr, body string, timeout time.Duration) (*http.Response, map[string]any, error) {
	t.Helper()
	c := http.Client{Timeout: timeout}
	resp, err := c.Post("http://"+addr+"/v1/messages", "application/json", strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return resp, nil, fmt.Errorf("response %d is not JSON: %q", resp.StatusCode, b)
	}
	return resp, out, nil
}

// metric reads one unlabelled metric from /metrics; -1 when absent.
func (e *env) metric(name string) float64 {
	e.t.Helper()
	_, body := get(e.t, "http://"+e.admin+"/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+-]+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// A busy session answers 429 with Retry-After on the HTTP API; an agent
// failure stays a 502.
func TestBusySessionIs429WithRetryAfter(t *testing.T) {
	ai := newFakeOpenAI(t)
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(strings.Replace(openAIConfig(ai, "sk-test-key", ""), "history_limit = 40", "history_limit = 40\n  queue_limit = 1", 1) +
		httpPlatform("web", web, `timeout = "20s"`))
	e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))

	var wg sync.WaitGroup
	for _, text := range []string{"slow 3000", "slow 10"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _ = postRaw(t, web, `{"session":"b","text":"`+text+`"}`, 30*time.Second)
		}()
		// The first must be running before the second queues behind it.
		eventually(t, 10*time.Second, "the turn to reach the provider", func() bool { return ai.Served() >= 1 })
	}
	var resp *http.Response
	var body map[string]any
	eventually(t, 10*time.Second, "a busy answer", func() bool {
		var err error
		resp, body, err = postRaw(t, web, `{"session":"b","text":"third"}`, 10*time.Second)
		return err == nil && resp.StatusCode == http.StatusTooManyRequests
	})
	if resp.Header.Get("Retry-After") == "" || !strings.Contains(fmt.Sprint(body["error"]), "Busy") {
		t.Fatalf("429 without Retry-After or reason: %v %v", resp.Header, body)
	}
	wg.Wait()

	// An agent failure is still a 502.
	fail := providertest.Scripted{Status: 500}
	ai.Script(fail, fail, fail, fail, fail, fail)
	resp, body, err := postRaw(t, web, `{"session":"c","text":"fails"}`, 30*time.Second)
	if err != nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("agent failure answered %v %v (%v), want 502", resp, body, err)
	}
}

// A request the HTTP client gave up on (timeout) does not start a turn if
// it has not started, and a turn that finished after its client left is
// not part of the history the model sees next.
func TestTimedOutRequestsAreNotAnsweredIntoHistory(t *testing.T) {
	ai := newFakeOpenAI(t)
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(openAIConfig(ai, "sk-test-key", "") + httpPlatform("web", web, `timeout = "1s"`))
	h := e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))

	// One slow turn and three more queued behind it, all with clients
	// that give up after 1s.
	var wg sync.WaitGroup
	codes := make([]int, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _, err := postRaw(t, web, `{"session":"u","text":"slow 2500"}`, 10*time.Second)
			if err == nil {
				codes[i] = resp.StatusCode
			}
		}()
		if i == 0 {
			eventually(t, 10*time.Second, "the first turn to reach the provider", func() bool { return ai.Served() >= 1 })
		}
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusGatewayTimeout {
			t.Fatalf("request %d answered %d, want 504", i, c)
		}
	}
	eventually(t, 10*time.Second, "the late reply to be marked undelivered", func() bool {
		return strings.Contains(h.log.String(), "marked undelivered in the transcript")
	})
	if n := ai.Served(); n != 1 {
		t.Fatalf("the provider was asked %d times; the three requests that expired while queued must not start a turn", n)
	}
	code, body := post(t, web, `{"session":"u","text":"hi"}`)
	if code != 200 || body["reply"] != "turns=1 last=hi" {
		t.Fatalf("next turn = %d %v; want the undelivered turn left out of the history (turns=1)", code, body)
	}
}

// A reply of 5 MB either reaches the HTTP client whole (a build whose
// message limits agree end to end) or is reported to it at once, with a
// clear error, and kept out of the history: never a silent 504 with the
// turn in history.
func TestUndeliverableReplyIsReportedAndKeptOutOfHistory(t *testing.T) {
	ai := newFakeOpenAI(t)
	big := strings.Repeat("x", 5<<20)
	ai.Reply = func(r *providertest.Request) string {
		if r.LastUser() == "big" {
			return big
		}
		users := 0
		for _, m := range r.Messages {
			if m.Role == "user" {
				users++
			}
		}
		return fmt.Sprintf("turns=%d last=%s", users, r.LastUser())
	}
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(openAIConfig(ai, "sk-test-key", "") + httpPlatform("web", web, `timeout = "60s"`))
	h := e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	start := time.Now()
	resp, body, err := postRaw(t, web, `{"session":"g","text":"big"}`, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == 200 {
		if got := fmt.Sprint(body["reply"]); !strings.HasPrefix(got, "xxx") {
			t.Fatalf("200 with reply %.40q", got)
		}
		code, body := post(t, web, `{"session":"g","text":"next"}`)
		if code != 200 || body["reply"] != "turns=2 last=next" {
			t.Fatalf("after a delivered reply: %d %v, want turns=2", code, body)
		}
		return
	}
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(fmt.Sprint(body["error"]), "could not be delivered") {
		t.Fatalf("undeliverable reply answered %d %v, want 502 naming the delivery failure", resp.StatusCode, body)
	}
	t.Logf("undeliverable reply reported after %s", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(h.log.String(), "marked undelivered in the transcript") {
		t.Fatal("the log does not say the reply was marked undelivered")
	}
	code, body := post(t, web, `{"session":"g","text":"next"}`)
	if code != 200 || body["reply"] != "turns=1 last=next" {
		t.Fatalf("next turn = %d %v; want the undelivered turn left out (turns=1)", code, body)
	}
}

// With one platform's plugin frozen while replies to it are on their way,
// the other platform answers at once: a reply slot is for producing a
// reply, not delivering it, and each platform has its own delivery queue.
// Goroutines stay bounded.
func TestFrozenPlatformDoesNotStarveAnother(t *testing.T) {
	ai := newFakeOpenAI(t)
	e := newEnv(t)
	e.install("http", "http")
	web, other := freeAddr(t), freeAddr(t)
	noLiveness := "\n  restart {\n    liveness_interval = \"1h\"\n  }\n"
	block := func(name, addr, timeout string) string {
		return fmt.Sprintf("platform %q {\n  plugin = \"http\"\n  config {\n    listen = %q\n    timeout = %q\n  }\n%s}\n", name, addr, timeout, noLiveness)
	}
	cfg := strings.Replace(openAIConfig(ai, "sk-test-key", ""), "history_limit = 40", "history_limit = 40\n  max_concurrent = 2", 1)
	e.writeConfig(cfg + block("web", web, "60s") + block("other", other, "5s"))
	e.start()
	webSt := e.waitPlatform("web", 20*time.Second, inState("running"))
	e.waitPlatform("other", 20*time.Second, inState("running"))
	before := e.metric("go_goroutines")

	const n = 8
	for i := range n {
		go func() {
			_, _, _ = postRaw(t, web, fmt.Sprintf(`{"session":"w%d","text":"slow 300"}`, i), 90*time.Second)
		}()
	}
	eventually(t, 10*time.Second, "the web turns to reach the provider", func() bool { return ai.Served() >= 1 })
	sigstop(t, webSt.PID)
	// Every web turn is produced; its reply now waits on the frozen plugin.
	eventually(t, 30*time.Second, "every web turn to be produced", func() bool { return ai.Served() >= n })

	for i := range 3 {
		text := fmt.Sprintf("hello %d", i)
		resp, body, err := postRaw(t, other, `{"session":"o","text":"`+text+`"}`, 30*time.Second)
		if err != nil || resp.StatusCode != 200 || body["reply"] != fmt.Sprintf("turns=%d last=%s", i+1, text) {
			t.Fatalf("healthy platform with the other one frozen: %v %v (%v); want 200 within its 5s timeout", resp, body, err)
		}
	}
	after := e.metric("go_goroutines")
	t.Logf("goroutines: %v before, %v with %d replies stuck on a frozen plugin", before, after, n)
	if after > before+4*n+50 {
		t.Fatalf("goroutines grew from %v to %v for %d stuck replies", before, after, n)
	}
}

// startPipedStderr starts the gateway with stderr (and stdout) into a pipe
// nobody reads, shrunk to one page so it fills at once.
func (e *env) startPipedStderr() (*host, *os.File) {
	e.t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		e.t.Fatal(err)
	}
	const fSetPipeSz = 1031 // F_SETPIPE_SZ
	if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, w.Fd(), fSetPipeSz, 4096); errno != 0 {
		e.t.Fatalf("F_SETPIPE_SZ: %v", errno)
	}
	h := &host{t: e.t, e: e, log: &syncBuffer{}, exited: make(chan struct{})}
	h.cmd = exec.Command(bins["gateway"], "run", "-config", e.config)
	h.cmd.Stdout, h.cmd.Stderr = w, w
	if err := h.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	w.Close()
	go func() { h.err = h.cmd.Wait(); close(h.exited) }()
	e.t.Cleanup(func() {
		h.stop()
		r.Close()
	})
	return h, r
}

// With stderr a pipe nobody reads, the host still answers requests, applies
// a SIGHUP, counts the dropped lines in /metrics, and stops on SIGTERM.
func TestBlockedLogOutputNeverStallsTheHost(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	web, added := freeAddr(t), freeAddr(t)
	e.logLevel = "debug"
	e.writeConfig(httpPlatform("web", web, ""))
	h, _ := e.startPipedStderr()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	// Two log lines a request at debug: well over what the buffer holds.
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 80 {
				resp, body, err := postRaw(t, web, fmt.Sprintf(`{"session":"s%d-%d","text":"hi"}`, w, i), 30*time.Second)
				if err != nil || resp.StatusCode != 200 || body["reply"] != "echo: hi" {
					errs <- fmt.Sprintf("request %d/%d with a stuck log: %v %v %v", w, i, resp, body, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Fatal(msg)
	}
	if d := e.metric("gateway_log_lines_dropped_total"); d <= 0 {
		t.Fatalf("gateway_log_lines_dropped_total = %v, want lines dropped", d)
	}
	e.writeConfig(httpPlatform("web", web, "") + httpPlatform("added", added, ""))
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.waitPlatform("added", 20*time.Second, inState("running"))
	if code, body := post(t, added, `{"session":"a","text":"after reload"}`); code != 200 || body["reply"] != "echo: after reload" {
		t.Fatalf("after reload: %d %v", code, body)
	}
	start := time.Now()
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := h.waitExit(5*time.Second + 10*time.Second)
	t.Logf("stopped in %s with a stuck log output (exit %d)", time.Since(start).Round(time.Millisecond), code)
}

// mountTmpfs mounts a tmpfs of size at dir for the test.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("this test needs a tmpfs (run as root): mount: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// fill writes a file into dir until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !strings.Contains(err.Error(), "no space") {
				t.Fatalf("filling %s: %v", path, err)
			}
			return
		}
	}
}

// With the state dir on a full tmpfs, status shows the store failing and
// /readyz is 503; once space returns the store recovers by itself.
func TestFullDiskShowsInStatusAndRecovers(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	state := filepath.Join(e.dir, "state")
	mountTmpfs(t, state, "4m")
	e.writeConfig(httpPlatform("web", web, ""))
	e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	if code, body := post(t, web, `{"session":"d","text":"before"}`); code != 200 {
		t.Fatalf("before the disk fills: %d %v", code, body)
	}
	filler := filepath.Join(state, "filler")
	fill(t, filler)

	big := strings.Repeat("y", 60000)
	code, body := post(t, web, `{"session":"d","text":"`+big+`"}`, "Content-Type", "application/json")
	if code == 200 {
		t.Fatalf("a turn was answered with the disk full (it cannot have been recorded)")
	}
	if !strings.Contains(fmt.Sprint(body["error"]), "no space") {
		t.Fatalf("full disk answered %d %v, want the reason", code, body)
	}
	var st struct {
		Store struct {
			State     string `json:"state"`
			LastError string `json:"last_error"`
			FreeBytes uint64 `json:"free_bytes"`
		} `json:"store"`
	}
	readStatus := func() {
		_, raw := get(t, "http://"+e.admin+"/v1/status")
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			t.Fatal(err)
		}
	}
	readStatus()
	if st.Store.State != "failing" || !strings.Contains(st.Store.LastError, "no space") {
		t.Fatalf("store status with a full disk = %+v", st.Store)
	}
	if code, body := get(t, "http://"+e.admin+"/readyz"); code != 503 || !strings.Contains(body, "store") {
		t.Fatalf("/readyz with a full disk = %d %s, want 503 naming the store", code, body)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the store to recover by itself", func() bool {
		code, _ := get(t, "http://"+e.admin+"/readyz")
		return code == 200
	})
	readStatus()
	if st.Store.State != "ok" || st.Store.FreeBytes == 0 || !strings.Contains(st.Store.LastError, "no space") {
		t.Fatalf("store status after recovery = %+v, want ok, free space, and the last error kept", st.Store)
	}
	if code, body := post(t, web, `{"session":"d","text":"after"}`); code != 200 || body["reply"] != "echo: after" {
		t.Fatalf("after space returned: %d %v", code, body)
	}
}

// Stop, fatal, crash and reload driven at once: every state /v1/status
// shows keeps the state machine's rules, and the host (which checks every
// transition it makes) logs no illegal one.
func TestStateSequencesUnderConcurrentStopFatalCrashReload(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	e.install("behave", "behave")
	web := freeAddr(t)
	config := func(gen int) string {
		return fmt.Sprintf(`
platform "crashy" {
  plugin = "behave"
  config {
    crash_after = "%dms"
  }
  restart {
    initial_backoff = "50ms"
    max_backoff     = "100ms"
    max_failures    = 1000
  }
}
platform "fatal" {
  plugin = "behave"
  config {
    fatal_after = "%dms"
  }
}
platform "web" {
  plugin = "http"
  config {
    listen  = %q
    timeout = "%ds"
  }
  restart {
    initial_backoff = "50ms"
  }
}
`, 150+gen%3*10, 100+gen%2*10, web, 10+gen%2)
	}
	e.writeConfig(config(0))
	h := e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))

	type seen struct {
		state    string
		err      string
		pid      int
		restarts int
	}
	var mu sync.Mutex
	seqs := map[string][]seen{}
	stopPoll := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stopPoll:
				return
			default:
			}
			st, ok := e.status()
			if !ok {
				continue
			}
			mu.Lock()
			for _, p := range st.Platforms {
				s := seen{p.State, p.Error, p.PID, p.Restarts}
				if q := seqs[p.Name]; len(q) == 0 || q[len(q)-1] != s {
					seqs[p.Name] = append(q, s)
				}
			}
			mu.Unlock()
		}
	}()

	// Crashes and a fatal error first, then reloads that replace every
	// platform (one with its binary replaced too) while they keep crashing.
	e.waitPlatform("crashy", 60*time.Second, func(p platformStatus) bool { return p.Restarts >= 2 })
	e.waitPlatform("fatal", 60*time.Second, inState("failed"))
	for gen := 1; gen <= 5; gen++ {
		e.writeConfig(config(gen))
		if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if gen == 2 {
			e.install("behave", "behave") // a replaced binary: Restart
		}
		time.Sleep(time.Second)
	}
	e.waitPlatform("web", 60*time.Second, inState("running"))
	close(stopPoll)
	<-polled
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := h.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if strings.Contains(h.log.String(), "illegal state transition") {
		t.Fatalf("the host made an illegal state transition")
	}
	mu.Lock()
	defer mu.Unlock()
	for name, q := range seqs {
		for i, s := range q {
			switch s.state {
			case "backoff", "failed":
				if s.err == "" {
					t.Errorf("%s: %s without an error at step %d: %+v", name, s.state, i, q)
				}
			case "running", "degraded":
				if s.pid == 0 {
					t.Errorf("%s: %s without a plugin process at step %d: %+v", name, s.state, i, q)
				}
			case "starting", "missing", "stopped", "disabled":
			default:
				t.Errorf("%s: unknown state %q", name, s.state)
			}
			if i > 0 && s.restarts < q[i-1].restarts {
				t.Errorf("%s: restarts went down at step %d: %+v", name, i, q)
			}
		}
		t.Logf("%s: %d states seen", name, len(q))
	}
	if len(seqs["crashy"]) < 4 || len(seqs["fatal"]) < 2 {
		t.Fatalf("too few states seen to mean anything: %v", seqs)
	}
}
