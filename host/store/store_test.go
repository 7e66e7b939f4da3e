package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func openTest(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func turn(text string) (Message, Message) {
	now := time.Now()
	return Message{Role: "user", Content: text, Time: now}, Message{Role: "assistant", Content: "re: " + text, Time: now}
}

func TestAppendHistoryAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", FileName)
	s := openTest(t, path)
	ctx := context.Background()
	for i := range 5 {
		u, a := turn(fmt.Sprint("m", i))
		if err := s.AppendTurn(ctx, "alice", 0, u, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetModel(ctx, "alice", "openai/gpt-4o"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode = %v, %v; want 0700", fi.Mode().Perm(), err)
	}

	s = openTest(t, path)
	defer s.Close()
	sess, hist, err := s.History("alice", 3)
	if err != nil {
		t.Fatal(err)
	}
	if sess.Messages != 10 || sess.Model != "openai/gpt-4o" || !sess.Exists() || sess.Updated.Before(sess.Created) {
		t.Fatalf("session = %+v", sess)
	}
	if len(hist) != 3 || hist[0].Content != "re: m3" || hist[1].Content != "m4" || hist[2].Content != "re: m4" {
		t.Fatalf("last 3 = %+v", hist)
	}
	if fresh, _ := s.Session("nobody"); fresh.Exists() {
		t.Fatalf("unknown session exists: %+v", fresh)
	}
}

func TestResetArchivesAndLateTurnGoesToArchive(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), FileName))
	defer s.Close()
	ctx := context.Background()
	u, a := turn("before")
	if err := s.AppendTurn(ctx, "bob", 0, u, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Reset(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	// A reply that was in flight during /new commits with the old epoch.
	u, a = turn("late")
	if err := s.AppendTurn(ctx, "bob", 0, u, a); err != nil {
		t.Fatal(err)
	}
	sess, hist, err := s.History("bob", 10)
	if err != nil || sess.Epoch != 1 || sess.Messages != 0 || len(hist) != 0 {
		t.Fatalf("after reset: %+v %v %v", sess, hist, err)
	}
	old, err := s.Transcript("bob", 0)
	if err != nil || len(old) != 4 || old[2].Content != "late" {
		t.Fatalf("archive = %+v, %v", old, err)
	}
	if err := s.AppendTurn(ctx, "bob", 7, u, a); err == nil {
		t.Fatal("append to a future epoch succeeded")
	}
	// The failed write did not poison the next one.
	u, a = turn("new")
	if err := s.AppendTurn(ctx, "bob", 1, u, a); err != nil {
		t.Fatal(err)
	}
}

func TestGroupCommitBatchesConcurrentWrites(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), FileName))
	defer s.Close()
	const writers, each = 64, 10
	var wg sync.WaitGroup
	errc := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				u, a := turn(fmt.Sprint(i))
				errc <- s.AppendTurn(context.Background(), fmt.Sprint("s", w), 0, u, a)
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Writes != writers*each || st.Commits >= st.Writes {
		t.Fatalf("stats = %+v; want %d writes in fewer commits", st, writers*each)
	}
	t.Logf("%d writes in %d commits", st.Writes, st.Commits)
	for w := range writers {
		if sess, _ := s.Session(fmt.Sprint("s", w)); sess.Messages != 2*each {
			t.Fatalf("session s%d has %d messages", w, sess.Messages)
		}
	}
}

func TestClosedStore(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), FileName))
	s.Close()
	u, a := turn("x")
	if err := s.AppendTurn(context.Background(), "k", 0, u, a); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

const helperEnv = "GATEWAY_STORE_KILL_HELPER"

// killHelper appends turns from several goroutines and prints "ack KEY N"
// after each AppendTurn returns, until it is SIGKILLed. arg is the folder,
// optionally followed by "|" and a sync interval.
func killHelper(arg string) {
	dir, interval, _ := strings.Cut(arg, "|")
	every, _ := time.ParseDuration(interval)
	s, err := Open(filepath.Join(dir, FileName), &Options{SyncInterval: every})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			key := fmt.Sprint("k", w)
			for i := 0; ; i++ {
				u, a := turn(fmt.Sprint(key, "-", i))
				if err := s.AppendTurn(context.Background(), key, 0, u, a); err != nil {
					fmt.Println("error", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %s %d\n", key, i)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestSurvivesSIGKILL: every turn acknowledged before a SIGKILL is there
// after it, with sync = "always" and with a sync interval longer than the
// test (the turn is written before it is acknowledged; a process crash
// does not need the fsync).
func TestSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	for _, sync := range []string{"", "1h"} {
		t.Run("sync="+sync, func(t *testing.T) { survivesSIGKILL(t, sync) })
	}
}

func survivesSIGKILL(t *testing.T, sync string) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir+"|"+sync)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]int{}
	sc := bufio.NewScanner(stdout)
	total := 0
	for sc.Scan() && total < 400 {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "ack" {
			t.Fatalf("helper said %q", sc.Text())
		}
		n, _ := strconv.Atoi(f[2])
		acked[f[1]] = n + 1
		total++
	}
	// Kill mid-stream: more appends are in flight right now.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() { // acks written before the kill still count
		f := strings.Fields(sc.Text())
		if len(f) == 3 {
			n, _ := strconv.Atoi(f[2])
			acked[f[1]] = n + 1
		}
	}
	_ = cmd.Wait()
	if total < 400 {
		t.Fatalf("helper acknowledged only %d turns", total)
	}

	s := openTest(t, filepath.Join(dir, FileName))
	defer s.Close()
	checkConsistent(t, s)
	for key, n := range acked {
		msgs, err := s.Transcript(key, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) < 2*n {
			t.Fatalf("%s: %d messages after SIGKILL; %d turns were acknowledged", key, len(msgs), n)
		}
		for i := range n {
			if want := fmt.Sprint(key, "-", i); msgs[2*i].Content != want || msgs[2*i+1].Content != "re: "+want {
				t.Fatalf("%s turn %d = %q/%q; want %q", key, i, msgs[2*i].Content, msgs[2*i+1].Content, want)
			}
		}
	}
	t.Logf("%d acknowledged turns across %d sessions intact after SIGKILL", total, len(acked))
}

// Transcripts of keys that prefix one another, and of neighbouring epochs,
// never mix.
func TestTranscriptRangesDoNotMix(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), FileName))
	defer s.Close()
	ctx := context.Background()
	for _, k := range []string{"a", "ab", "a\x00", "b"} {
		for i := range 3 {
			u, a := turn(k + fmt.Sprint(i))
			if err := s.AppendTurn(ctx, k, 0, u, a); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Reset(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	u, a := turn("a-new")
	if err := s.AppendTurn(ctx, "a", 1, u, a); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]int{"a": 2, "ab": 6, "a\x00": 6, "b": 6} {
		_, hist, err := s.History(k, 100)
		if err != nil || len(hist) != want {
			t.Fatalf("%q: %d messages, %v; want %d", k, len(hist), err, want)
		}
		for _, m := range hist {
			if !strings.HasPrefix(m.Content, k) && !strings.HasPrefix(m.Content, "re: "+k) {
				t.Fatalf("%q holds %q", k, m.Content)
			}
		}
	}
	if old, _ := s.Transcript("a", 0); len(old) != 6 || old[0].Content != "a0" {
		t.Fatalf("archive of a = %+v", old)
	}
}
