package router

import (
	"context"
	"strings"
)

// Origin is who a turn answers: the platform and the user whose message it
// is. The router puts it in the context it calls Agents.Reply with, so that
// what the agent layer reports about the turn (token usage) can be
// accounted to that user.
type Origin struct {
	Platform string
	UserID   string
	Direct   bool
}

type originKey struct{}

// WithOrigin returns ctx carrying o.
func WithOrigin(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

// OriginOf returns the origin ctx carries, if any.
func OriginOf(ctx context.Context) (Origin, bool) {
	o, ok := ctx.Value(originKey{}).(Origin)
	return o, ok
}

// IsCommand reports whether text is a chat command (/new, /model …): the
// router answers those itself, never through the agent.
func IsCommand(text string) bool {
	_, _, ok := parseCommand(strings.TrimSpace(text))
	return ok
}
