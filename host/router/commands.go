package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/plughost/gateway/shared"
)

const helpText = `Commands:
/new (or /reset) — start a fresh session
/model [PROVIDER/MODEL] — show or switch this session's model
/status — show this session
/stop — cancel the reply in progress
/help — this list`

// parseCommand splits "/name arg" into its parts. Only a leading slash
// followed by a letter makes a command, so "/ 2" or "/path/to" stay text.
func parseCommand(text string) (name, arg string, ok bool) {
	if len(text) < 2 || text[0] != '/' {
		return "", "", false
	}
	c := text[1]
	if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
		return "", "", false
	}
	name, arg, _ = strings.Cut(text[1:], " ")
	if strings.Contains(name, "/") {
		return "", "", false
	}
	// Discord-style "/model@botname" addressing is tolerated.
	name, _, _ = strings.Cut(name, "@")
	return strings.ToLower(name), strings.TrimSpace(arg), true
}

// command handles a chat command from Handle, without waiting on the
// store or the plugin: /stop acts at once; /new drops what waits and
// queues its reset; /model X queues the switch; what only reads is
// answered at once. Every answer is queued for delivery.
func (r *Router) command(j *job, name, arg string) {
	notice := func(text string) { r.notify(j, text, shared.KindNotice) }
	fail := func(err error) {
		text, kind := commandFailure(err)
		r.notify(j, text, kind)
	}

	switch name {
	case "help":
		notice(helpText)
	case "stop":
		if r.cancelRunning(j.key, errStopped, true) {
			notice("Stopped the reply in progress.")
		} else {
			notice("Nothing to stop.")
		}
	case "new", "reset":
		r.cancelRunning(j.key, errStopped, true)
		j.cmd = "new"
		r.enqueue(j)
	case "model":
		if arg == "" {
			cur, err := r.opts.Agents.Model(j.key)
			if err != nil {
				fail(err)
				return
			}
			notice(fmt.Sprintf("Model: %s\nProviders: %s\nSwitch with /model PROVIDER/MODEL", cur, strings.Join(r.opts.Agents.Models(), ", ")))
			return
		}
		j.cmd, j.arg = "model", arg
		r.enqueue(j)
	case "status":
		st, err := r.opts.Agents.Status(j.key)
		if err != nil {
			fail(err)
			return
		}
		busy, waiting := r.Busy(j.key)
		state := "idle"
		if busy {
			state = fmt.Sprintf("replying (%d waiting)", waiting)
		}
		notice(fmt.Sprintf("Session: %s\nAgent: %s\nModel: %s\nMessages: %d\nState: %s", j.key, st.Agent, st.Model, st.Messages, state))
	default:
		notice(fmt.Sprintf("Unknown command /%s. Try /help.", name))
	}
}

// commandTimeout bounds a command's store write.
const commandTimeout = 30 * time.Second

// sessionCommand runs a command that writes the session, in the session's
// queue like any turn, and delivers its answer.
func (r *Router) sessionCommand(_ context.Context, j *job) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	var err error
	var done string
	switch j.cmd {
	case "new":
		err, done = r.opts.Agents.Reset(ctx, j.key), "Started a new session."
	case "model":
		err, done = r.opts.Agents.SetModel(ctx, j.key, j.arg), "Model switched to "+j.arg+"."
	}
	if err != nil {
		text, kind := commandFailure(err)
		r.deliver(j, text, kind)
		return
	}
	r.deliver(j, done, shared.KindNotice)
}

// commandFailure words a command's failure. A command's answer is a
// notice, "no such provider" included: only a failure the user cannot act
// on (the store broke) is an error.
func commandFailure(err error) (string, shared.ReplyKind) {
	if ue := UserError(nil); errors.As(err, &ue) {
		return ue.UserMessage(), shared.KindNotice
	}
	return userText(err), shared.KindError
}
