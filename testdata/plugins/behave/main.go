// Command behave is a platform plugin for tests whose config block decides
// how it misbehaves: crash after a while, report a fatal error, answer
// slowly. Every start appends its PID to starts_file, so tests can count
// starts.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/plughost/gateway/shared"
)

type settings struct {
	StartsFile string `json:"starts_file"`
	CrashAfter string `json:"crash_after"`
	FatalAfter string `json:"fatal_after"`
	FatalCode  string `json:"fatal_code"`
	Degraded   bool   `json:"degraded"`
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
	return nil
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
