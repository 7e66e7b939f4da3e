package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/plughost/gateway/host/provider/providertest"
)

// spoolPlatform is the behave plugin playing a platform that redelivers
// what its plugin did not confirm (see testdata/plugins/behave).
func spoolPlatform(spool string, dieBeforeConfirm bool) string {
	return fmt.Sprintf(`
platform "spool" {
  plugin = "behave"
  access {
    dm = "open" # these tests are about taking messages, not pairing (access_test.go)
  }
  config {
    spool_dir          = %q
    die_before_confirm = %v
  }
  restart {
    initial_backoff = "50ms"
    max_backoff     = "200ms"
  }
}
`, spool, dieBeforeConfirm)
}

// spool is the test's side of the behave plugin's spool platform.
type spool struct {
	t   *testing.T
	dir string
}

func newSpool(t *testing.T) *spool {
	dir := filepath.Join(t.TempDir(), "spool")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return &spool{t: t, dir: dir}
}

// say puts a message on the platform.
func (s *spool) say(id, text string) {
	s.t.Helper()
	tmp := filepath.Join(s.dir, id+".tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, id+".msg")); err != nil {
		s.t.Fatal(err)
	}
}

func (s *spool) confirmed(id string) bool {
	_, err := os.Stat(filepath.Join(s.dir, id+".done"))
	return err == nil
}

// replies returns the texts answered to id.
func (s *spool) replies(id string) []string {
	data, _ := os.ReadFile(filepath.Join(s.dir, "replies"))
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if to, text, ok := strings.Cut(line, "\t"); ok && to == id {
			out = append(out, text)
		}
	}
	return out
}

func (s *spool) lines(name string) []string {
	data, _ := os.ReadFile(filepath.Join(s.dir, name))
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// waitAnswered waits until id is confirmed and answered, and returns its
// replies.
func (s *spool) waitAnswered(id string) []string {
	s.t.Helper()
	eventually(s.t, 30*time.Second, "message "+id+" confirmed and answered", func() bool {
		return s.confirmed(id) && len(s.replies(id)) > 0
	})
	return s.replies(id)
}

// TestRedeliveredMessageIsAnsweredOnce: the plugin is SIGKILLed after the
// host took (and answered) a message but before it confirmed it to its
// platform; the platform delivers it again to the restarted plugin, and the
// host acknowledges it without answering it a second time. The restarted
// plugin gets the cursor the host kept.
func TestRedeliveredMessageIsAnsweredOnce(t *testing.T) {
	e := newEnv(t)
	e.install("behave", "behave")
	sp := newSpool(t)
	e.writeConfig(spoolPlatform(sp.dir, true))
	sp.say("m1", "hello")
	e.start()

	got := sp.waitAnswered("m1")
	// Anything answered twice would be answered before m2: the router
	// keeps a conversation's order.
	sp.say("m2", "again")
	sp.waitAnswered("m2")
	if got = sp.replies("m1"); len(got) != 1 || got[0] != "echo: hello" {
		t.Errorf("replies to m1 = %q, want one echo: hello", got)
	}
	if _, err := os.Stat(filepath.Join(sp.dir, "died")); err != nil {
		t.Fatal("the plugin did not kill itself before confirming: the test proved nothing")
	}
	if cursors := sp.lines("cursors"); len(cursors) < 2 || cursors[0] != "" || cursors[1] != "m1" {
		t.Errorf("cursors the plugin started with = %q, want \"\" then m1", cursors)
	}
}

// TestMessageTakenBeforeAHostCrashIsNotAnsweredAgain: the host is SIGKILLed
// and the platform delivers a message it had taken and answered again to
// the next host: it is acknowledged, not answered.
func TestMessageTakenBeforeAHostCrashIsNotAnsweredAgain(t *testing.T) {
	e := newEnv(t)
	e.install("behave", "behave")
	sp := newSpool(t)
	e.writeConfig(spoolPlatform(sp.dir, false))
	sp.say("m1", "hello")
	h := e.start()
	sp.waitAnswered("m1")
	// The record that m1 was answered is written after its reply went out;
	// m2's take commits after it, so once m2 is confirmed, m1's record is
	// durable. (The last reply before a crash can always be sent again:
	// sending to a platform and recording it are not one step.)
	sp.say("m2", "next")
	eventually(t, 30*time.Second, "m2 confirmed", func() bool { return sp.confirmed("m2") })
	_ = h.cmd.Process.Signal(syscall.SIGKILL)
	h.waitExit(10 * time.Second)

	// The platform forgets the confirmation: it delivers m1 again.
	if err := os.Rename(filepath.Join(sp.dir, "m1.done"), filepath.Join(sp.dir, "m1.msg")); err != nil {
		t.Fatal(err)
	}
	// The killed host's plugin exits by itself (it watches its parent);
	// until it has, it could still be delivering from the spool.
	eventually(t, 10*time.Second, "the old plugin to exit", func() bool {
		st, up := e.status()
		return !up && st.PID == 0
	})
	e.start()
	eventually(t, 30*time.Second, "m1 confirmed again", func() bool { return sp.confirmed("m1") })
	sp.say("m3", "again")
	sp.waitAnswered("m3")
	if got := sp.replies("m1"); len(got) != 1 {
		t.Errorf("replies to m1 = %q, want exactly one across the host crash", got)
	}
}

// TestProtocol1PluginStillWorks: a plugin binary built before protocol 2
// loads and answers (whole replies, no streaming).
func TestProtocol1PluginStillWorks(t *testing.T) {
	e := newEnv(t)
	e.install("httpv1", "http")
	web := freeAddr(t)
	e.writeConfig(httpPlatform("web", web, ""))
	h := e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	code, body := post(t, web, `{"session":"a","text":"hi"}`)
	if code != 200 || body["reply"] != "echo: hi" {
		t.Fatalf("POST = %d %v, want 200 echo: hi", code, body)
	}
	if log := h.log.String(); !strings.Contains(log, "older protocol") || !strings.Contains(log, "rebuild") {
		t.Errorf("the host did not warn that the plugin speaks protocol 1")
	}
}

// TestTakenMessageIsAnsweredAfterAHostCrash: the host took a message (the
// plugin confirmed it to its platform, which will not deliver it again)
// and died before answering it; the next host answers it, once.
func TestTakenMessageIsAnsweredAfterAHostCrash(t *testing.T) {
	ai := providertest.New(t)
	ai.APIKey = "sk-test-key"
	var held atomic.Bool
	ai.Hold = func(ctx context.Context, _ *providertest.Request) {
		if held.CompareAndSwap(false, true) {
			<-ctx.Done() // the first host never gets its answer
		}
	}
	e := newEnv(t)
	e.install("behave", "behave")
	sp := newSpool(t)
	e.writeConfig(openAIConfig(ai, "sk-test-key", "") + spoolPlatform(sp.dir, false))
	sp.say("m1", "hello")
	h := e.start()
	eventually(t, 30*time.Second, "m1 taken and being answered", func() bool {
		return sp.confirmed("m1") && len(ai.Requests()) == 1
	})
	_ = h.cmd.Process.Signal(syscall.SIGKILL)
	h.waitExit(10 * time.Second)
	if got := sp.replies("m1"); len(got) != 0 {
		t.Fatalf("m1 answered before the crash: %q", got)
	}

	e.start()
	eventually(t, 30*time.Second, "m1 answered by the next host", func() bool { return len(sp.replies("m1")) > 0 })
	sp.say("m2", "again")
	sp.waitAnswered("m2")
	if got := sp.replies("m1"); len(got) != 1 || got[0] != "reply to: hello" {
		t.Errorf("replies to m1 = %q, want one reply to: hello", got)
	}
}
