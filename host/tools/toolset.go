package tools

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Toolset is what one agent may call now: the allowed tools of the running
// servers, each under a function name that OpenAI-compatible APIs accept
// (^[a-zA-Z0-9_-]{1,64}$, so "files.read_file" becomes "files__read_file").
type Toolset struct {
	m      *Manager
	byFunc map[string]Tool
	names  []string
	// Unavailable names the allowed servers that are down now, so the model
	// can be told their tools are missing rather than that they never were.
	Unavailable []string
}

// Function is a tool as offered to the model.
type Function struct {
	Name        string
	Description string
	Parameters  json.RawMessage
}

// Len is the number of tools in the set.
func (ts *Toolset) Len() int {
	if ts == nil {
		return 0
	}
	return len(ts.names)
}

// Functions lists the tools as functions, sorted by name.
func (ts *Toolset) Functions() []Function {
	if ts == nil {
		return nil
	}
	out := make([]Function, 0, len(ts.names))
	for _, name := range ts.names {
		t := ts.byFunc[name]
		params := t.InputSchema
		if len(params) == 0 || string(params) == "null" {
			params = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out = append(out, Function{Name: name, Description: t.Description, Parameters: params})
	}
	return out
}

// Tool returns the tool behind a function name.
func (ts *Toolset) Tool(function string) (Tool, bool) {
	if ts == nil {
		return Tool{}, false
	}
	t, ok := ts.byFunc[function]
	return t, ok
}

// ErrNotAllowed means the model asked for a function outside the set.
var ErrNotAllowed = errors.New("tool not allowed")

// Call runs the tool behind function with args (a JSON object). The result
// is the text to give back to the model; isError says the tool failed (its
// own error, a timeout, its server down): the model is told, the agent goes
// on. err is set only for a function outside the set, which is never
// called.
func (ts *Toolset) Call(ctx context.Context, function string, args json.RawMessage) (result string, isError bool, err error) {
	t, ok := ts.Tool(function)
	if !ok {
		return fmt.Sprintf("error: %q is not a tool you may use", function), true, fmt.Errorf("%w: %q", ErrNotAllowed, function)
	}
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	res, isErr, cerr := ts.m.call(ctx, t, args)
	if cerr != nil {
		return "error: " + cerr.Error(), true, nil
	}
	return res, isErr, nil
}

func (ts *Toolset) add(t Tool) {
	name := FunctionName(t.Server, t.Name)
	if _, taken := ts.byFunc[name]; taken {
		name = hashed(name, t.FullName())
	}
	ts.byFunc[name] = t
	ts.names = append(ts.names, name)
	sort.Strings(ts.names)
}

// FunctionName maps SERVER.TOOL to a valid function name: characters
// outside [a-zA-Z0-9_-] become "_", the two parts are joined by "__", and a
// name over 64 characters is cut and given a hash suffix to stay unique.
func FunctionName(server, tool string) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
				return r
			}
			return '_'
		}, s)
	}
	name := clean(server) + "__" + clean(tool)
	if len(name) > 64 {
		name = hashed(name, server+"."+tool)
	}
	return name
}

func hashed(name, full string) string {
	sum := sha256.Sum256([]byte(full))
	suffix := "_" + hex.EncodeToString(sum[:4])
	if len(name)+len(suffix) > 64 {
		name = name[:64-len(suffix)]
	}
	return name + suffix
}

// allowed reports whether a pattern names t: SERVER.TOOL or SERVER.*.
func allowed(patterns []string, t Tool) bool {
	for _, p := range patterns {
		server, tool, ok := strings.Cut(p, ".")
		if ok && server == t.Server && (tool == "*" || tool == t.Name) {
			return true
		}
	}
	return false
}

func anyPatternFor(patterns []string, server string) bool {
	for _, p := range patterns {
		if s, _, ok := strings.Cut(p, "."); ok && s == server {
			return true
		}
	}
	return false
}
