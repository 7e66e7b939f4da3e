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

// Open makes the state dir private (0700); what the store keeps is tested
// on both backends by storetest.
func TestOpenMakesTheStateDirPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", FileName)
	s := openTest(t, path)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode = %v, %v; want 0700", fi.Mode().Perm(), err)
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
