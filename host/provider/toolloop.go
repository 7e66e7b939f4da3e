package provider

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
)

// DefaultMaxToolRounds is max_tool_rounds when the config leaves it 0.
const DefaultMaxToolRounds = 8

// Toolbox is what an agent may call: the functions offered to the model
// and the way to run one. Call never runs a function outside Functions: it
// returns an error result (and a non-nil err) instead.
type Toolbox interface {
	Functions() []Function
	Call(ctx context.Context, function string, args json.RawMessage) (result string, isError bool, err error)
}

// Function is a tool as offered to the model: a name valid for the chat
// completions API, a description and a JSON Schema for its arguments.
type Function struct {
	Name        string
	Description string
	Parameters  json.RawMessage
}

type chatTool struct {
	Type     string       `json:"type"`
	Function chatFunction `json:"function"`
}

type chatFunction struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters"`
}

// offer is the tools field of one request.
func offer(fns []Function) []chatTool {
	out := make([]chatTool, 0, len(fns))
	for _, f := range fns {
		out = append(out, chatTool{Type: "function", Function: chatFunction{Name: f.Name, Description: f.Description, Parameters: f.Parameters}})
	}
	return out
}

// completeWithTools runs the tool loop: it offers req.Tools, runs the calls
// the model asks for (in parallel), sends their results back and asks
// again, up to MaxToolRounds rounds; the last request forbids tool calls
// (tool_choice "none") so that the model answers. once makes one request.
func completeWithTools(ctx context.Context, req *Request, once func(context.Context, *Request) (*Response, error)) (*Response, error) {
	rounds := req.MaxToolRounds
	if rounds <= 0 {
		rounds = DefaultMaxToolRounds
	}
	r := *req
	r.Messages = slices.Clone(req.Messages)
	r.offered = offer(req.Tools.Functions())
	var turns []Message
	for round := 0; ; round++ {
		last := round >= rounds
		if last && len(r.offered) > 0 {
			r.toolChoice = "none"
		}
		resp, err := once(ctx, &r)
		if err != nil {
			return nil, err
		}
		if len(resp.ToolCalls) == 0 || last {
			resp.ToolCalls = nil
			resp.Turns = turns
			return resp, nil
		}
		asked := Message{Role: RoleAssistant, Content: resp.Content, ToolCalls: resp.ToolCalls}
		results := runToolCalls(ctx, req, resp.ToolCalls)
		if err := ctx.Err(); err != nil {
			return nil, err // /stop or the deadline: no reply
		}
		r.Messages = append(r.Messages, asked)
		r.Messages = append(r.Messages, results...)
		turns = append(turns, asked)
		turns = append(turns, results...)
	}
}

// runToolCalls runs calls in parallel and returns their results in order.
// A failing tool, or one outside the toolbox, is a result for the model.
func runToolCalls(ctx context.Context, req *Request, calls []ToolCall) []Message {
	out := make([]Message, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() {
			out[i] = Message{Role: RoleTool, ToolCallID: c.ID, Content: runToolCall(ctx, req, c)}
		})
	}
	wg.Wait()
	return out
}

func runToolCall(ctx context.Context, req *Request, c ToolCall) string {
	args := json.RawMessage(strings.TrimSpace(c.Function.Arguments))
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	var obj map[string]any
	if err := json.Unmarshal(args, &obj); err != nil {
		return "error: the arguments are not a JSON object: " + err.Error()
	}
	if req.OnToolCall != nil {
		req.OnToolCall(c.Function.Name)
	}
	res, isErr, _ := req.Tools.Call(ctx, c.Function.Name, args)
	if isErr && !strings.HasPrefix(res, "error") {
		res = "error: " + res
	}
	return res
}
