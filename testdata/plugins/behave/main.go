// Command behave is a platform plugin for tests whose config block decides
// how it misbehaves: crash after a while, report a fatal error, answer
// slowly. Every start appends its PID to starts_file, so tests can count
// starts.
//
// With spool_dir set it also plays a platform that redelivers what its
// plugin did not confirm: every SPOOL/ID.msg file is a message (its text
// the file's content, conversation "c", cursor ID), given to the host with
// shared.Deliver and confirmed by renaming it to ID.done only once Deliver
// returned. Replies are appended to SPOOL/replies as "REPLYTO<TAB>TEXT"
// lines, and each start appends the cursor it was configured with to
// SPOOL/cursors. With die_before_confirm, the first start SIGKILLs itself
// once the first message is taken and answered, before confirming it.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/plughost/gateway/shared"
)

type settings struct {
	StartsFile string `json:"starts_file"`
	CrashAfter string `json:"crash_after"`
	FatalAfter string `json:"fatal_after"`
	FatalCode  string `json:"fatal_code"`
	Degraded   bool   `json:"degraded"`
	SpoolDir   string `json:"spool_dir"`
	DieBefore  bool   `json:"die_before_confirm"`
}

type behave struct {
	cfg  settings
	mu   sync.Mutex
	sent []shared.Reply
	stop chan struct{}
	once sync.Once
}

func (b *behave) Describe(context.Context) (shared.Description, error) {
	return shared.Description{
		Name: "behave", Version: "0.0.1", Description: "a plugin that misbehaves on purpose",
		Schema: []shared.Attribute{
			{Name: "starts_file", Type: shared.TypeString, Description: "file each start appends its PID to"},
			{Name: "crash_after", Type: shared.TypeDuration, Description: "exit(3) this long after connecting"},
			{Name: "fatal_after", Type: shared.TypeDuration, Description: "report a fatal error this long after connecting"},
			{Name: "fatal_code", Type: shared.TypeString, Default: "token_rejected"},
			{Name: "degraded", Type: shared.TypeBool, Default: false, Description: "report degraded instead of connected"},
			{Name: "secret", Type: shared.TypeString, Sensitive: true},
			{Name: "spool_dir", Type: shared.TypeString, Description: "folder of messages to deliver (see the package doc)"},
			{Name: "die_before_confirm", Type: shared.TypeBool, Default: false},
		},
	}, nil
}

func (b *behave) Configure(_ context.Context, cfg shared.Config) error {
	if err := cfg.Decode(&b.cfg); err != nil {
		return err
	}
	if b.cfg.StartsFile != "" {
		f, err := os.OpenFile(b.cfg.StartsFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := fmt.Fprintln(f, strconv.Itoa(os.Getpid())); err != nil {
			return err
		}
	}
	if b.cfg.SpoolDir != "" {
		if err := appendLine(filepath.Join(b.cfg.SpoolDir, "cursors"), cfg.Cursor); err != nil {
			return err
		}
	}
	return nil
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, line)
	return err
}

// spool delivers the spool's unconfirmed messages, oldest name first, as
// they appear.
func (b *behave) spool(ctx context.Context, events chan<- shared.Event) error {
	dieMarker := filepath.Join(b.cfg.SpoolDir, "died")
	for {
		names, _ := filepath.Glob(filepath.Join(b.cfg.SpoolDir, "*.msg"))
		sort.Strings(names)
		for _, name := range names {
			text, err := os.ReadFile(name)
			if err != nil {
				return err
			}
			id := strings.TrimSuffix(filepath.Base(name), ".msg")
			m := &shared.Message{ID: id, ConversationID: "c", UserID: "u", Direct: true, Text: string(text), Cursor: id}
			if err := shared.Deliver(ctx, events, m); err != nil {
				return nil // not taken: the next start delivers it again
			}
			if b.cfg.DieBefore {
				if _, err := os.Stat(dieMarker); err != nil {
					b.waitReply(ctx, id)
					_ = os.WriteFile(dieMarker, nil, 0o600)
					_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				}
			}
			if err := os.Rename(name, strings.TrimSuffix(name, ".msg")+".done"); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-b.stop:
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitReply waits until a reply to id has been written.
func (b *behave) waitReply(ctx context.Context, id string) {
	for ctx.Err() == nil {
		data, _ := os.ReadFile(filepath.Join(b.cfg.SpoolDir, "replies"))
		if strings.Contains("\n"+string(data), "\n"+id+"\t") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func after(s string) <-chan time.Time {
	if s == "" {
		return nil
	}
	d, _ := time.ParseDuration(s)
	return time.After(d)
}

func (b *behave) Run(ctx context.Context, events chan<- shared.Event) error {
	state := shared.Connected
	if b.cfg.Degraded {
		state = shared.Degraded
	}
	events <- shared.Event{Health: &shared.Health{State: state, Message: "behaving"}}
	if b.cfg.SpoolDir != "" {
		return b.spool(ctx, events)
	}
	select {
	case <-ctx.Done():
		return nil
	case <-b.stop:
		return nil
	case <-after(b.cfg.CrashAfter):
		fmt.Fprintln(os.Stderr, "behave: crashing as configured")
		os.Exit(3)
	case <-after(b.cfg.FatalAfter):
		return &shared.FatalError{Code: b.cfg.FatalCode, Message: "the platform rejected the token", Hint: "check the token"}
	}
	return nil
}

func (b *behave) Send(_ context.Context, r shared.Reply) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent = append(b.sent, r)
	if b.cfg.SpoolDir != "" {
		if err := appendLine(filepath.Join(b.cfg.SpoolDir, "replies"), r.ReplyToID+"\t"+r.Text); err != nil {
			return nil, err
		}
	}
	return []string{strconv.Itoa(len(b.sent))}, nil
}

func (b *behave) Typing(context.Context, shared.Conversation) error { return nil }

func (b *behave) Stop(context.Context) error {
	b.once.Do(func() { close(b.stop) })
	return nil
}

func main() {
	shared.Serve(&behave{stop: make(chan struct{})})
}
