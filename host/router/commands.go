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

// command answers a chat command at once, even while a reply runs.
func (r *Router) command(j *job, name, arg string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	notice := func(text string) { r.reply(j, text, shared.KindNotice) }
	// A command's answer is a notice, "no such provider" included: only a
	// failure the user cannot act on (the store broke) is an error.
	fail := func(err error) {
		if ue := UserError(nil); errors.As(err, &ue) {
			notice(ue.UserMessage())
			return
		}
		r.reply(j, userText(err), shared.KindError)
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
		if err := r.opts.Agents.Reset(ctx, j.key); err != nil {
			fail(err)
			return
		}
		notice("Started a new session.")
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
		if err := r.opts.Agents.SetModel(ctx, j.key, arg); err != nil {
			fail(err)
			return
		}
		notice("Model switched to " + arg + ".")
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
		notice(fmt.Sprintf("Session: %s\nModel: %s\nMessages: %d\nState: %s", j.key, st.Model, st.Messages, state))
	default:
		notice(fmt.Sprintf("Unknown command /%s. Try /help.", name))
	}
}
