package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plughost/gateway/plugins/matrix/fakematrix"
)

// matrixPlatform is a platform block for the matrix plugin against fake.
func matrixPlatform(fake *fakematrix.Server, token, extra string) string {
	return fmt.Sprintf(`
platform "matrix" {
  plugin = "matrix"
  access {
    dm = "open" # these tests are about Matrix, not pairing (access_test.go)
  }
  config {
    homeserver   = %q
    access_token = %q
    %s
  }
  restart {
    initial_backoff = "50ms"
    max_backoff     = "200ms"
  }
}
`, fake.URL, token, extra)
}

const (
	alice = "@alice:fake.local"
	bob   = "@bob:fake.local"
)

// startMatrix runs a host with the matrix plugin until it is running.
func startMatrix(t *testing.T, fake *fakematrix.Server, extra string) (*env, *host) {
	t.Helper()
	e := newEnv(t)
	e.install("matrix", "matrix")
	e.writeConfig(matrixPlatform(fake, fakematrix.DefaultToken, extra))
	h := e.start()
	e.waitPlatform("matrix", 20*time.Second, inState("running"))
	return e, h
}

// waitSent waits for the bot to send body in room and returns it.
func waitSent(t *testing.T, fake *fakematrix.Server, room, body string) fakematrix.Sent {
	t.Helper()
	var found fakematrix.Sent
	eventually(t, 15*time.Second, fmt.Sprintf("%q to be sent in %s", body, room), func() bool {
		for _, s := range fake.Sent() {
			if s.RoomID == room && s.Body() == body {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

func countSent(fake *fakematrix.Server, room, body string) int {
	n := 0
	for _, s := range fake.Sent() {
		if s.RoomID == room && s.Body() == body {
			n++
		}
	}
	return n
}

func TestMatrixDirectChatsAnsweredRoomsOnlyOnMention(t *testing.T) {
	t.Parallel()
	fake := fakematrix.New(t)
	dm := fake.CreateRoom("!dm:fake.local", false, alice)
	group := fake.CreateRoom("!group:fake.local", false, alice, bob)
	startMatrix(t, fake, "")

	q := fake.Say(dm, alice, "hello there", nil)
	got := waitSent(t, fake, dm, "echo: hello there")
	if got.ReplyTo() != q {
		t.Errorf("the reply answers %q, want the user's message %q", got.ReplyTo(), q)
	}
	if got.Content["msgtype"] != "m.text" {
		t.Errorf("reply msgtype %v, want m.text", got.Content["msgtype"])
	}

	// In a room of three, a message without a mention is not for the bot.
	fake.Say(group, bob, "just chatting", nil)
	// A mention by m.mentions, by display name, and a command after one.
	fake.Say(group, alice, "what is up", map[string]any{"m.mentions": map[string]any{"user_ids": []string{fakematrix.BotUserID}}})
	waitSent(t, fake, group, "echo: what is up")
	fake.Say(group, bob, fakematrix.BotDisplayName+": second question", nil)
	waitSent(t, fake, group, "echo: second question")
	if n := countSent(fake, group, "echo: just chatting"); n != 0 {
		t.Fatalf("a room message without a mention was answered %d times", n)
	}

	// A thread is its own session, and the reply goes into the thread.
	root := fake.Say(group, alice, "thread root", nil)
	fake.Say(group, alice, fakematrix.BotUserID+" in the thread", map[string]any{
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}})
	inThread := waitSent(t, fake, group, "echo: in the thread")
	if inThread.ThreadID() != root {
		t.Fatalf("the thread reply went to thread %q, want %q", inThread.ThreadID(), root)
	}

	// Markdown replies carry a formatted body.
	fake.Say(dm, alice, "**bold** and `code`", nil)
	md := waitSent(t, fake, dm, "echo: **bold** and `code`")
	if fb, _ := md.Content["formatted_body"].(string); !strings.Contains(fb, "<strong>bold</strong>") || !strings.Contains(fb, "<code>code</code>") {
		t.Fatalf("Markdown reply has formatted_body %q", fb)
	}
}

func TestMatrixHistoryBeforeFirstStartIsNotAnswered(t *testing.T) {
	t.Parallel()
	fake := fakematrix.New(t)
	dm := fake.CreateRoom("!dm:fake.local", false, alice)
	fake.Say(dm, alice, "old question", nil)
	startMatrix(t, fake, "")
	fake.Say(dm, alice, "new question", nil)
	waitSent(t, fake, dm, "echo: new question")
	if n := countSent(fake, dm, "echo: old question"); n != 0 {
		t.Fatalf("a message from before the bot first started was answered %d times", n)
	}
}

func TestMatrixRejectedTokenFailsOnceWithNoFurtherRequests(t *testing.T) {
	t.Parallel()
	fake := fakematrix.New(t)
	e := newEnv(t)
	e.install("matrix", "matrix")
	e.writeConfig(matrixPlatform(fake, "not-the-token", ""))
	h := e.start()
	p := e.waitPlatform("matrix", 20*time.Second, inState("failed"))
	if !p.Fatal || !strings.Contains(p.Error, "M_UNKNOWN_TOKEN") || !strings.Contains(p.Hint, "MATRIX_TOKEN") {
		t.Fatalf("bad token: %+v, want fatal naming M_UNKNOWN_TOKEN with a hint naming MATRIX_TOKEN", p)
	}
	if n := len(fake.Requests()); n != 1 {
		t.Fatalf("%d requests with a rejected token, want exactly 1 (whoami): %v", n, fake.Requests())
	}
	// The failure is final: nothing more reaches the homeserver.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if st, _ := e.status(); len(st.Platforms) > 0 && st.Platforms[0].State != "failed" {
			t.Fatalf("failed platform moved: %+v", st.Platforms[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(fake.Requests()); n != 1 {
		t.Fatalf("%d requests after the token was rejected, want still 1: %v", n, fake.Requests())
	}
	if strings.Contains(h.log.String(), "not-the-token") {
		t.Fatal("the token reached the log")
	}
}

func TestMatrixTokenRevokedWhileRunning(t *testing.T) {
	t.Parallel()
	fake := fakematrix.New(t)
	dm := fake.CreateRoom("!dm:fake.local", false, alice)
	e, _ := startMatrix(t, fake, "")
	fake.Say(dm, alice, "before", nil)
	waitSent(t, fake, dm, "echo: before")
	before := len(fake.Requests())
	fake.SetToken("a-new-token")
	p := e.waitPlatform("matrix", 20*time.Second, inState("failed"))
	if !p.Fatal || !strings.Contains(p.Hint, "MATRIX_TOKEN") {
		t.Fatalf("revoked token: %+v, want fatal with a hint naming MATRIX_TOKEN", p)
	}
	time.Sleep(500 * time.Millisecond) // let anything that would follow arrive
	if extra := len(fake.Requests()) - before; extra > 1 {
		t.Fatalf("%d requests after the token was revoked, want at most 1: %v", extra, fake.Requests()[before:])
	}
}

func TestMatrixDeactivatedAccountIsFatal(t *testing.T) {
	t.Parallel()
	fake := fakematrix.New(t)
	fake.Deactivate()
	e := newEnv(t)
	e.install("matrix", "matrix")
	e.writeConfig(matrixPlatform(fake, fakematrix.DefaultToken, ""))
	e.start()
	p := e.waitPlatform("matrix", 20*time.Second, inState("failed"))
	if !p.Fatal || !strings.Contains(p.Error, "M_USER_DEACTIVATED") {
		t.Fatalf("deactivated account: %+v", p)
	}
}

func TestMatrixServerErrorsDegradeAndRecover(t *testing.T) {
	t.Parallel()
	fake := fakematrix.New(t)
	dm := fake.CreateRoom("!dm:fake.local", false, alice)
	e, _ := startMatrix(t, fake, "")
	fake.FailNext("/sync", 502, 503, 500)
	fake.Say(dm, alice, "during the outage", nil) // wakes the long poll into the failures
	e.waitPlatform("matrix", 20*time.Second, inState("degraded"))
	e.waitPlatform("matrix", 20*time.Second, inState("running"))
	waitSent(t, fake, dm, "echo: during the outage")
	if n := countSent(fake, dm, "echo: during the outage"); n != 1 {
		t.Fatalf("answered %d times, want once", n)
	}
}

func TestMatrixRateLimitIsWaitedOut(t *testing.T) {
	t.Parallel()
	fake := fakematrix.New(t)
	dm := fake.CreateRoom("!dm:fake.local", false, alice)
	startMatrix(t, fake, "")
	fake.RateLimit("/send/", 400)
	fake.Say(dm, alice, "limited", nil)
	eventually(t, 10*time.Second, "a send to be rate limited", func() bool { return fake.RateLimitHits() > 0 })
	fake.RateLimit("/send/", 0)
	waitSent(t, fake, dm, "echo: limited")
	if n := countSent(fake, dm, "echo: limited"); n != 1 {
		t.Fatalf("answered %d times after a rate limit, want once", n)
	}
}

func TestMatrixEncryptedRoomIsNeverAnsweredInPlaintext(t *testing.T) {
	t.Parallel()
	fake := fakematrix.New(t)
	enc := fake.CreateRoom("!secret:fake.local", true, alice)
	dm := fake.CreateRoom("!dm:fake.local", false, alice)
	_, h := startMatrix(t, fake, "")
	fake.SayEncrypted(enc, alice)
	fake.SayEncrypted(enc, alice)
	fake.Say(enc, alice, "plaintext in an encrypted room", nil)
	fake.Say(dm, alice, "marker", nil)
	waitSent(t, fake, dm, "echo: marker")
	for _, s := range fake.Sent() {
		if s.RoomID == enc {
			t.Fatalf("the bot sent %q into an encrypted room", s.Body())
		}
	}
	if n := strings.Count(h.log.String(), "end-to-end encrypted room"); n != 1 {
		t.Fatalf("the encrypted-room warning was logged %d times, want once", n)
	}
}

func TestMatrixAutoJoinOnlyFromAllowedUsers(t *testing.T) {
	t.Parallel()
	fake := fakematrix.New(t)
	startMatrix(t, fake, fmt.Sprintf("allowed_users = [%q]", alice))
	fake.Invite("!fromalice:fake.local", alice)
	fake.Invite("!frombob:fake.local", bob)
	eventually(t, 10*time.Second, "the bot to join the room alice invited it to", func() bool {
		return fake.Joined("!fromalice:fake.local")
	})
	// Bob's invite came after Alice's and the fake answers both in one sync,
	// so by now it has been seen too.
	if fake.Joined("!frombob:fake.local") {
		t.Fatal("the bot joined a room on an invite from a user not in allowed_users")
	}
	fake.Say("!fromalice:fake.local", alice, "thanks for joining", nil)
	waitSent(t, fake, "!fromalice:fake.local", "echo: thanks for joining")
}

// killPluginAndSay SIGKILLs the platform's plugin and says texts in room while it
// is down and restarting, then waits for the next plugin to run.
func killPluginAndSay(t *testing.T, e *env, fake *fakematrix.Server, room string, texts []string) {
	t.Helper()
	first := e.waitPlatform("matrix", 10*time.Second, inState("running"))
	// The plugin syncs again only once the host took what the last sync
	// brought (messages, or a checkpoint of where it began).
	syncs := func() int {
		n := 0
		for _, r := range fake.Requests() {
			if strings.Contains(r, "/sync") {
				n++
			}
		}
		return n
	}
	eventually(t, 10*time.Second, "a second /sync", func() bool { return syncs() >= 2 })
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, text := range texts {
		fake.Say(room, alice, text, nil)
	}
	e.waitPlatform("matrix", 20*time.Second, func(p platformStatus) bool { return p.State == "running" && p.PID != first.PID })
}

// answeredOnce waits for every text in room to be answered, then (the room
// is one session, answered in order) checks that each was answered once.
func answeredOnce(t *testing.T, fake *fakematrix.Server, room string, texts ...string) {
	t.Helper()
	for _, text := range texts {
		waitSent(t, fake, room, "echo: "+text)
	}
	marker := fmt.Sprintf("marker %d", len(fake.Sent()))
	fake.Say(room, alice, marker, nil)
	waitSent(t, fake, room, "echo: "+marker)
	for _, text := range texts {
		if n := countSent(fake, room, "echo: "+text); n != 1 {
			t.Errorf("%q answered %d times, want once", text, n)
		}
	}
}

// startMatrixWithHistory starts a host with the matrix plugin after a
// question was asked in a direct chat: history, which is never answered
// (see noHistoryAnswered).
func startMatrixWithHistory(t *testing.T) (fake *fakematrix.Server, dm string, e *env, h *host) {
	t.Helper()
	fake = fakematrix.New(t)
	dm = fake.CreateRoom("!dm:fake.local", false, alice)
	fake.Say(dm, alice, "old question", nil)
	e, h = startMatrix(t, fake, "")
	return fake, dm, e, h
}

func noHistoryAnswered(t *testing.T, fake *fakematrix.Server, dm string) {
	t.Helper()
	if n := countSent(fake, dm, "echo: old question"); n != 0 {
		t.Fatalf("history from before the first start was answered %d times", n)
	}
}

// TestMatrixPluginKilledMessagesMeanwhileAnsweredOnce: the host keeps the
// /sync token (Message.Cursor, handed back as Config.Cursor), so a plugin
// SIGKILLed while messages arrive answers each once after its restart, and
// history from before the first start stays unanswered. Killed before it
// ever handed the host a message, it resumes where its first sync began
// (a checkpoint), not taking what came meanwhile for history.
func TestMatrixPluginKilledMessagesMeanwhileAnsweredOnce(t *testing.T) {
	t.Parallel()
	for name, answerFirst := range map[string]bool{"after its first answer": true, "before its first answer": false} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fake, dm, e, _ := startMatrixWithHistory(t)
			texts := []string{"while down 1", "while down 2", "while down 3"}
			if answerFirst {
				fake.Say(dm, alice, "first", nil)
				waitSent(t, fake, dm, "echo: first")
				texts = append(texts, "first")
			}
			killPluginAndSay(t, e, fake, dm, texts[:3])
			answeredOnce(t, fake, dm, texts...)
			noHistoryAnswered(t, fake, dm)
		})
	}
}

// TestMatrixHostRestartMessagesMeanwhileAnsweredOnce: the /sync token
// survives a host restart (SIGTERM, then start): a message sent while the
// host was down is answered once, and nothing answered before is again.
func TestMatrixHostRestartMessagesMeanwhileAnsweredOnce(t *testing.T) {
	t.Parallel()
	fake, dm, e, h := startMatrixWithHistory(t)
	fake.Say(dm, alice, "first", nil)
	waitSent(t, fake, dm, "echo: first")

	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := h.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("the host exited %d on SIGTERM", code)
	}
	fake.Say(dm, alice, "while stopped", nil)
	e.start()
	e.waitPlatform("matrix", 20*time.Second, inState("running"))
	answeredOnce(t, fake, dm, "first", "while stopped")
	noHistoryAnswered(t, fake, dm)
}
