package shared

import "context"

// ReplyPhase is where a part stands in a streamed reply.
type ReplyPhase int

// The phases of a streamed reply: one Start, any number of Deltas, then
// exactly one End or Fail.
const (
	// PhaseStart: a reply begins; Reply.Text is empty.
	PhaseStart ReplyPhase = iota + 1
	// PhaseDelta: Reply.Text is the text added since the last part.
	PhaseDelta
	// PhaseEnd: Reply.Text is the whole final reply, the same text the
	// transcript keeps. A platform that skipped interim updates still
	// shows exactly this.
	PhaseEnd
	// PhaseFail: the reply ended early (stopped, failed, timed out);
	// Reply.Text says why, for the user, and Reply.Kind is KindNotice or
	// KindError. The text streamed so far stays as it is.
	PhaseFail
)

// String returns the phase's name.
func (p ReplyPhase) String() string {
	switch p {
	case PhaseStart:
		return "start"
	case PhaseDelta:
		return "delta"
	case PhaseEnd:
		return "end"
	case PhaseFail:
		return "fail"
	default:
		return "ReplyPhase(?)"
	}
}

// ReplyPart is one part of a streamed reply.
type ReplyPart struct {
	// ReplyID is the same on every part of one reply (and unique per host
	// run), so a platform can edit the message it posted in place.
	ReplyID string
	Phase   ReplyPhase
	// Reply says where the reply goes and what it is; its Text depends on
	// Phase (see the phases).
	Reply Reply
}

// Streamer is implemented by a Platform that can show a reply while it is
// being written (editing a message in place, server-sent events). It needs
// protocol 2; with protocol 1, or when Streams returns false, the host calls
// Send once with the whole reply instead.
type Streamer interface {
	// Streams reports, after Configure, whether this config wants replies
	// streamed.
	Streams() bool
	// SendPart shows one part of a streamed reply. Parts of one reply come
	// in order, from one goroutine; parts of replies to different
	// conversations may come concurrently. For PhaseEnd and PhaseFail it
	// returns the platform's ids of the messages it posted, like Send (a
	// *FatalError means the credentials are gone); an error from an
	// earlier phase is logged by the host, and the reply goes on.
	SendPart(ctx context.Context, part ReplyPart) ([]string, error)
}

// PluginConn is the host's connection to a running plugin, whichever
// protocol version was negotiated. Run forwards the plugin's events; the
// host calls Ack on each message event once it has taken the message
// (protocol 2 sends that acknowledgement back to the plugin, whose Deliver
// returns only then).
type PluginConn interface {
	Platform
	// Protocol is the negotiated protocol version.
	Protocol() int
	// ConfigureWithLevel configures the plugin (cfg.Cursor included) and
	// sets its log level; Config.Logger is not sent.
	ConfigureWithLevel(ctx context.Context, cfg Config, level string) error
	// SetLogLevel changes the plugin's log level.
	SetLogLevel(ctx context.Context, level string) error
	// Streams reports whether the plugin, as configured, shows streamed
	// replies: false for protocol 1 and for a plugin that is no Streamer.
	Streams() bool
	// SendPart sends one part of a streamed reply. To a plugin that does
	// not stream, Start and Delta are dropped, End is sent as one whole
	// reply, and Fail as a whole reply of its text.
	SendPart(ctx context.Context, part ReplyPart) ([]string, error)
}

// sendWhole is SendPart for a plugin that does not stream: only the last
// part reaches it, as one whole reply.
func sendWhole(ctx context.Context, send func(context.Context, Reply) ([]string, error), part ReplyPart) ([]string, error) {
	switch part.Phase {
	case PhaseEnd, PhaseFail:
		return send(ctx, part.Reply)
	default:
		return nil, nil
	}
}
