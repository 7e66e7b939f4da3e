// Package shared is the gateway's plugin contract, imported by the host and by
// every platform plugin: the Go Platform interface, the types that cross the
// wire, the go-plugin handshake, Serve for plugin authors, and test helpers.
//
// A plugin's main.go is about ten lines:
//
//	func main() { shared.Serve(&adapter{}) }
//
// The wire protocol is negotiated per plugin (go-plugin's versioned plugin
// sets): protocol 2, one long-lived bidirectional stream per plugin
// (server_v2.go is the plugin's side, client_v2.go the host's), is preferred;
// protocol 1 (grpc.go: a server stream of events and one unary call per
// reply) still serves plugins built before it. With protocol 2 "taken"
// means recorded durably by the host: Deliver returns only once the host's
// acknowledgement came back over the stream, and replies can be streamed
// to a Streamer as start, deltas and end.
package shared

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/go-hclog"
)

// Platform is implemented by every platform plugin. The host calls Describe,
// then Configure, then Run; Send and Typing may be called concurrently with
// Run and with each other; Stop ends everything gracefully.
type Platform interface {
	// Describe returns the plugin's identity and the schema of its config
	// block. It must not depend on Configure having been called.
	Describe(ctx context.Context) (Description, error)

	// Configure receives the plugin's config block, decoded and validated
	// against the schema by the host, defaults applied. A *FatalError means
	// the config can never work and the platform must not be restarted.
	Configure(ctx context.Context, cfg Config) error

	// Run connects to the platform and sends inbound messages and health
	// changes on events until ctx is cancelled or Stop is called, then
	// returns nil. It must not send on events after it returns. A returned
	// *FatalError ends the platform for good (the host marks it failed and
	// does not restart it); any other error is transient and the host
	// restarts the plugin with backoff.
	Run(ctx context.Context, events chan<- Event) error

	// Send delivers a reply and returns the platform's ids of the messages
	// it posted (a long reply may take several). A *FatalError means the
	// credentials are gone.
	Send(ctx context.Context, reply Reply) ([]string, error)

	// Typing shows a typing indicator in a conversation, where the
	// platform has one; otherwise it returns nil.
	Typing(ctx context.Context, conv Conversation) error

	// Stop disconnects gracefully and releases everything Run opened. It
	// must finish well within two seconds: the host kills the process after.
	Stop(ctx context.Context) error
}

// Description is a plugin's identity and config schema.
type Description struct {
	Name        string
	Version     string
	Description string
	Schema      []Attribute
}

// AttributeType is the type of a config attribute.
type AttributeType int

// The attribute types a plugin's config block may use.
const (
	TypeString AttributeType = iota + 1
	TypeBool
	TypeNumber
	TypeListOfString
	// TypeDuration is a string such as "30s" or "2m", checked by the host.
	TypeDuration
)

// String returns the type as written in docs and diagnostics.
func (t AttributeType) String() string {
	switch t {
	case TypeString:
		return "string"
	case TypeBool:
		return "bool"
	case TypeNumber:
		return "number"
	case TypeListOfString:
		return "list(string)"
	case TypeDuration:
		return "duration"
	default:
		return fmt.Sprintf("AttributeType(%d)", int(t))
	}
}

// Attribute describes one attribute of a plugin's config block.
type Attribute struct {
	Name     string
	Type     AttributeType
	Required bool
	// Sensitive values are never logged or printed by the host.
	Sensitive bool
	// Default is used when the attribute is not set: a string, bool,
	// float64/int, []string, or nil for none.
	Default     any
	Description string
}

// Config is a plugin's decoded config block: a JSON object with every
// attribute of the schema present (defaults applied; unset optional
// attributes without a default are absent).
type Config struct {
	// Raw is the JSON object.
	Raw json.RawMessage
	// Logger is the plugin's logger; its output is merged into the host's
	// log under the platform's name.
	Logger hclog.Logger
	// Cursor is the Message.Cursor of the last message (or checkpoint) the
	// host took from this platform, or "" when it has taken none yet (first
	// start).
	Cursor string
	// Shard and ShardCount: the plugin runs shard Shard of ShardCount
	// (platform "NAME" { shards = N }); ShardCount is 1 when unsharded.
	Shard, ShardCount int
}

// Sharded returns the config's shard and shard count, 0 of 1 when unsharded.
func (c Config) Sharded() (shard, count int) {
	if c.ShardCount < 1 {
		return 0, 1
	}
	return c.Shard, c.ShardCount
}

// Decode unmarshals the config into v, a pointer to a struct with json tags.
func (c Config) Decode(v any) error {
	if len(c.Raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(c.Raw, v); err != nil {
		return fmt.Errorf("decoding plugin config: %w", err)
	}
	return nil
}

// Event is one thing that happened on the platform (a message, a health
// change) or a request to the host (a transcript): one of them is set.
type Event struct {
	Message *Message
	Health  *Health
	// Taken, when set (by Deliver), is told once whether the host took
	// Message; see Ack. It never crosses the wire.
	Taken chan<- error
	// Transcript asks the host for a session's transcript (see
	// AskTranscript); it is set alone.
	Transcript *TranscriptRequest
	// ack is the host side's Taken: set by the protocol 2 client on a
	// message its plugin waits for, it sends the acknowledgement back.
	ack func(error)
}

// Message is one inbound chat message.
type Message struct {
	ID             string
	ConversationID string
	ThreadID       string
	UserID         string
	UserName       string
	GuildID        string
	// Direct is true for a direct message (DM) rather than a group chat.
	Direct   bool
	Text     string
	UnixNano int64
	// ExpiresUnixNano is when the platform stops waiting for the reply (an
	// HTTP request's timeout), 0 for never: the host does not start a turn
	// for a message whose time is up, and a reply it could not deliver is
	// kept out of the history the model sees.
	ExpiresUnixNano int64
	// Cursor is the platform's position just after this message (a sync
	// token, an update offset), opaque to the host. Once the host has taken
	// the message it keeps the cursor durably per platform and hands the
	// latest one back in Config.Cursor when the plugin starts again. A
	// Message with only a Cursor is a checkpoint (see Checkpoint).
	Cursor string
	// Stream asks for the reply streamed as it is written (an HTTP request
	// with "stream": true; a Discord channel that shows edits), to a
	// platform that is a Streamer. Without it the host sends one whole
	// reply and calls the provider without streaming. Protocol 2 only.
	Stream bool
	// Model, when set, is the PROVIDER/MODEL this message's turn runs on
	// instead of the session's (an OpenAI request's "model"): the same
	// rule as /model, for this turn only. An unknown one is answered with
	// a KindError reply whose Code is CodeModelNotFound.
	Model string
	// Stateless, when set, makes the message a whole conversation on its
	// own (an OpenAI request that names no session): the host answers from
	// its history and Text alone, reads and writes no session, and never
	// reads Text as a chat command. (A pointer keeps Message comparable.)
	Stateless *Stateless
}

// Stateless is what a stateless message carries besides its text.
type Stateless struct {
	// History is the conversation before the message's Text, oldest first.
	History []HistoryMessage
}

// HistoryMessage is one message of a stateless conversation.
type HistoryMessage struct {
	// Role is "system", "user" or "assistant".
	Role string
	Text string
}

// HealthState is a plugin's connection to its platform.
type HealthState int

// The health states a plugin reports.
const (
	// Connected: connected and receiving.
	Connected HealthState = iota + 1
	// Degraded: not receiving now, recovering by itself.
	Degraded
	// Fatal: cannot recover without a config change; Health.Fatal says why.
	Fatal
)

// String returns the state's name.
func (s HealthState) String() string {
	switch s {
	case Connected:
		return "connected"
	case Degraded:
		return "degraded"
	case Fatal:
		return "fatal"
	default:
		return fmt.Sprintf("HealthState(%d)", int(s))
	}
}

// Health reports a change in the plugin's connection.
type Health struct {
	State   HealthState
	Message string
	// Fatal is set when State is Fatal.
	Fatal *FatalError
}

// ReplyKind tells a platform what a reply is, so it can present it.
type ReplyKind int

// The kinds of reply.
const (
	// KindReply is the agent's answer.
	KindReply ReplyKind = iota + 1
	// KindNotice answers a chat command or tells the user something.
	KindNotice
	// KindError says the gateway could not answer, and why.
	KindError
	// KindBusy says the session is busy with other messages: the user
	// should send it again later (the HTTP API answers 429).
	KindBusy
)

// Conversation names where a message was said.
type Conversation struct {
	ConversationID string
	ThreadID       string
}

// Reply is a message from the gateway to a conversation.
type Reply struct {
	ConversationID string
	ThreadID       string
	// ReplyToID is the id of the inbound message this answers.
	ReplyToID string
	Text      string
	Kind      ReplyKind
	// Code is a machine-readable reason for a KindError reply
	// (CodeModelNotFound), "" when there is none.
	Code string
	// Usage is the token usage the provider reported for the turn this
	// reply answers; nil when it reported none (and for notices).
	Usage *Usage
}

// Usage is a turn's token usage, as the provider reported it.
type Usage struct {
	PromptTokens     int64
	CompletionTokens int64
}

// CodeModelNotFound is the Reply.Code of a turn whose Message.Model names
// no configured provider or is not PROVIDER/MODEL.
const CodeModelNotFound = "model_not_found"

// FatalError is an error that restarting cannot fix: rejected credentials,
// invalid config, disallowed intents. Plugins return it from Configure, Run
// or Send; the host marks the platform failed and does not restart it until
// its config changes.
type FatalError struct {
	// Code is a stable machine-readable reason, e.g. "token_rejected".
	Code string
	// Message says what happened, for humans.
	Message string
	// Hint says what to do, for humans.
	Hint string
}

// Error returns the message and, when there is one, the hint.
func (e *FatalError) Error() string {
	if e.Hint == "" {
		return e.Message
	}
	return e.Message + ": " + e.Hint
}
