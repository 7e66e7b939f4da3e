package e2e

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/plughost/gateway/host/provider/providertest"
)

// openAIConfig is a provider block for the fake, and an agent block using it.
func openAIConfig(ai *providertest.Server, key string, extra string) string {
	return fmt.Sprintf(`
provider "openai" {
  type     = "openai"
  base_url = %q
  api_key  = %q
  %s
}
agent {
  model         = "openai/test-model"
  system_prompt = "Be brief."
  history_limit = 40
}
`, ai.URL, key, extra)
}

func TestConversationSurvivesAKilledHost(t *testing.T) {
	ai := newFakeOpenAI(t)
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(openAIConfig(ai, "sk-test-key", "") + httpPlatform("web", web, ""))
	h := e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	for i, text := range []string{"one", "two"} {
		code, body := post(t, web, `{"session":"alice","text":"`+text+`"}`)
		if want := fmt.Sprintf("turns=%d last=%s", i+1, text); code != 200 || body["reply"] != want {
			t.Fatalf("turn %d: %d %v, want %q", i+1, code, body, want)
		}
	}
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	h.waitExit(5 * time.Second)

	e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	code, body := post(t, web, `{"session":"alice","text":"three"}`)
	if code != 200 || body["reply"] != "turns=3 last=three" {
		t.Fatalf("after SIGKILL and restart: %d %v, want the history of 2 turns kept", code, body)
	}
	msgs := ai.LastRequest().Messages
	var got []string
	for _, m := range msgs {
		got = append(got, m.Role+":"+m.Content)
	}
	want := []string{"user:one", "assistant:turns=1 last=one", "user:two", "assistant:turns=2 last=two", "user:three"}
	if joined := strings.Join(got, "|"); !strings.HasSuffix(joined, strings.Join(want, "|")) || msgs[0].Role != "system" || msgs[0].Content != "Be brief." {
		t.Fatalf("history sent to the provider:\n%s\nwant system prompt then %v", joined, want)
	}
	// /new starts over.
	post(t, web, `{"session":"alice","text":"/new"}`)
	if _, body := post(t, web, `{"session":"alice","text":"fresh"}`); body["reply"] != "turns=1 last=fresh" {
		t.Fatalf("after /new: %v", body)
	}
}

func TestChurnKeepsProviderConnectionsBounded(t *testing.T) {
	ai := newFakeOpenAI(t)
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(openAIConfig(ai, "sk-test-key", "max_connections = 8") + `
cache {
  max_agents = 8
}
` + httpPlatform("web", web, ""))
	h := e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))

	const sessions, clients = 1000, 16
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > sessions {
					return
				}
				text := "hi"
				switch i % 10 { // churn: model switches and resets evict agents too
				case 3:
					text = "/model openai/other-model"
				case 7:
					text = "/new"
				}
				code, _ := post(t, web, fmt.Sprintf(`{"session":"s%d","text":%q}`, i, text))
				if code != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed", n, sessions)
	}
	if peak := ai.PeakConns(); peak > 8+2 {
		t.Fatalf("peak open connections to the provider = %d, want <= max_connections (8) + 2", peak)
	}
	var st status
	eventually(t, 10*time.Second, "every evicted agent to be closed", func() bool {
		st, _ = e.status()
		return st.Cache.Evictions > 0 && st.Cache.Closed == st.Cache.Evictions
	})
	if st.Cache.Agents > 8 {
		t.Fatalf("cache holds %d agents, max 8", st.Cache.Agents)
	}
	t.Logf("peak provider connections %d, evictions %d, closed %d", ai.PeakConns(), st.Cache.Evictions, st.Cache.Closed)

	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	h.waitExit(20 * time.Second)
	eventually(t, 5*time.Second, "provider connections to drop to 0", func() bool { return ai.OpenConns() == 0 })
}

func TestRejectedAPIKeyIsExplained(t *testing.T) {
	ai := newFakeOpenAI(t)
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(openAIConfig(ai, "sk-wrong", "") + httpPlatform("web", web, ""))
	e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	code, body := post(t, web, `{"session":"k","text":"hello"}`)
	if code != 502 || !strings.Contains(fmt.Sprint(body["error"]), "rejected the API key") {
		t.Fatalf("wrong key: %d %v", code, body)
	}
	if strings.Contains(fmt.Sprint(body), "sk-wrong") {
		t.Fatal("the key leaked into the reply")
	}
}
