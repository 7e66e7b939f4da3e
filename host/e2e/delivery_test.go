package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plughost/gateway/host/provider/providertest"
)

// postFull posts body to the HTTP platform at addr and returns the whole
// response (status, headers, decoded body).
func postFull(t testing.TB, addr, body string, timeout time.Duration) (*http.Response, map[string]any, error) {
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
	for i, text := range []string{"slow 6000", "slow 10"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _ = postFull(t, web, `{"session":"b","text":"`+text+`"}`, 30*time.Second)
		}()
		if i == 0 {
			// The first must be running before the second queues behind it.
			eventually(t, 10*time.Second, "the turn to reach the provider", func() bool { return ai.Served() >= 1 })
		}
	}
	eventually(t, 10*time.Second, "the second message to wait in the queue", func() bool {
		_, body, err := postFull(t, web, `{"session":"b","text":"/status"}`, 10*time.Second)
		return err == nil && strings.Contains(fmt.Sprint(body["reply"]), "(1 waiting)")
	})
	var resp *http.Response
	var body map[string]any
	eventually(t, 5*time.Second, "a busy answer", func() bool {
		var err error
		resp, body, err = postFull(t, web, `{"session":"b","text":"third"}`, 10*time.Second)
		return err == nil && resp.StatusCode == http.StatusTooManyRequests
	})
	if resp.Header.Get("Retry-After") == "" || !strings.Contains(fmt.Sprint(body["error"]), "Busy") {
		t.Fatalf("429 without Retry-After or reason: %v %v", resp.Header, body)
	}
	wg.Wait()

	// An agent failure is still a 502.
	fail := providertest.Scripted{Status: 500}
	ai.Script(fail, fail, fail, fail, fail, fail)
	resp, body, err := postFull(t, web, `{"session":"c","text":"fails"}`, 30*time.Second)
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
			resp, _, err := postFull(t, web, `{"session":"u","text":"slow 2500"}`, 10*time.Second)
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
	resp, body, err := postFull(t, web, `{"session":"g","text":"big"}`, 60*time.Second)
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
			_, _, _ = postFull(t, web, fmt.Sprintf(`{"session":"w%d","text":"slow 300"}`, i), 90*time.Second)
		}()
	}
	eventually(t, 10*time.Second, "the web turns to reach the provider", func() bool { return ai.Served() >= 1 })
	// Every request must be in the host before the plugin freezes: one the
	// plugin had not forwarded yet would never reach the provider.
	webIn := regexp.MustCompile(`(?m)^gateway_messages_in_total\{platform="web"\} ([0-9.e+]+)$`)
	eventually(t, 20*time.Second, "all web messages to reach the host", func() bool {
		_, body := get(t, "http://"+e.admin+"/metrics")
		m := webIn.FindStringSubmatch(body)
		if m == nil {
			return false
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v >= n
	})
	sigstop(t, webSt.PID)
	// Every web turn is produced; its reply now waits on the frozen plugin.
	eventually(t, 30*time.Second, "every web turn to be produced", func() bool { return ai.Served() >= n })

	for i := range 3 {
		text := fmt.Sprintf("hello %d", i)
		resp, body, err := postFull(t, other, `{"session":"o","text":"`+text+`"}`, 30*time.Second)
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
