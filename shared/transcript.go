package shared

import (
	"context"
	"errors"
	"sync"

	pb "github.com/plughost/gateway/shared/proto"
)

// A plugin may ask the host for a session's transcript (a web page shows
// the conversation again after a reload): AskTranscript sends the request
// on Run's events channel and waits for the answer. Protocol 2 carries it
// as a request frame and the host's answer frame; under protocol 1 the
// answer is ErrTranscriptUnsupported.

// ErrTranscriptUnsupported answers a transcript request the connection to
// the host cannot carry (protocol 1).
var ErrTranscriptUnsupported = errors.New("the gateway host does not serve transcripts to this plugin (protocol 1)")

// TranscriptMessage is one message of a session's transcript.
type TranscriptMessage struct {
	// Role is "user" or "assistant".
	Role     string
	Text     string
	UnixNano int64
}

// Transcript is the host's answer to a transcript request: the session's
// current conversation (since its last /new), oldest first.
type Transcript struct {
	Messages []TranscriptMessage
	// Truncated says only the newest messages are there: the rest would
	// not fit in one protocol message.
	Truncated bool
}

// TranscriptRequest asks the host for the transcript of the session a
// message in Conversation (a direct one) would go to.
type TranscriptRequest struct {
	Conversation Conversation
	// result is told the answer once; answer sends it back to the plugin
	// (set on the host's side of the wire).
	result chan<- transcriptResult
	answer func(Transcript, error)
	once   sync.Once
}

type transcriptResult struct {
	t   Transcript
	err error
}

// NewTranscriptRequest returns a request for conv whose answer is sent
// back with answer (the host's side of a protocol: it carries the answer
// to the plugin).
func NewTranscriptRequest(conv Conversation, answer func(Transcript, error)) *TranscriptRequest {
	return &TranscriptRequest{Conversation: conv, answer: answer}
}

// Answer answers the request; only the first call counts, and it never
// blocks.
func (r *TranscriptRequest) Answer(t Transcript, err error) {
	r.once.Do(func() {
		if r.answer != nil {
			r.answer(t, err)
		}
		if r.result != nil {
			r.result <- transcriptResult{t, err} // buffered
		}
	})
}

// AskTranscript asks the host, over Run's events channel, for the
// transcript of the session of conv, and waits for the answer or ctx.
func AskTranscript(ctx context.Context, events chan<- Event, conv Conversation) (Transcript, error) {
	res := make(chan transcriptResult, 1)
	req := &TranscriptRequest{Conversation: conv, result: res}
	select {
	case events <- Event{Transcript: req}:
	case <-ctx.Done():
		return Transcript{}, ctx.Err()
	}
	select {
	case r := <-res:
		return r.t, r.err
	case <-ctx.Done():
		return Transcript{}, ctx.Err()
	}
}

// errTranscriptHostGone answers a transcript request whose stream ended
// before the host answered it.
var errTranscriptHostGone = errors.New("the gateway host disconnected before it answered")

// TranscriptError is the host's failure to read a transcript, as it
// crossed the wire.
type TranscriptError struct {
	Message string
}

// Error returns the host's message.
func (e *TranscriptError) Error() string {
	return "the gateway host could not read the transcript: " + e.Message
}

// ask registers a plugin's transcript request under id until its answer
// comes (protocol 2); once the host is gone it is answered at once.
func (p *pendingTaken) ask(id uint64, req *TranscriptRequest) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		req.Answer(Transcript{}, errTranscriptHostGone)
		return
	}
	if p.asks == nil {
		p.asks = map[uint64]*TranscriptRequest{}
	}
	p.asks[id] = req
}

// answered returns the request waiting under id, if any.
func (p *pendingTaken) answered(id uint64) *TranscriptRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	req := p.asks[id]
	delete(p.asks, id)
	return req
}

func transcriptRequestToProto(id uint64, req *TranscriptRequest) *pb.PluginFrame {
	return &pb.PluginFrame{Kind: &pb.PluginFrame_TranscriptRequest{TranscriptRequest: &pb.TranscriptRequest{
		Id: id, ConversationId: req.Conversation.ConversationID, ThreadId: req.Conversation.ThreadID}}}
}

func transcriptAnswerToProto(id uint64, t Transcript, err error) *pb.HostFrame {
	a := &pb.TranscriptAnswer{Id: id, Truncated: t.Truncated}
	if err != nil {
		a.Error = err.Error()
	}
	for _, m := range t.Messages {
		a.Messages = append(a.Messages, &pb.TranscriptMessage{Role: m.Role, Text: m.Text, UnixNano: m.UnixNano})
	}
	return &pb.HostFrame{Kind: &pb.HostFrame_Transcript{Transcript: a}}
}

func transcriptAnswerFromProto(a *pb.TranscriptAnswer) (Transcript, error) {
	if msg := a.GetError(); msg != "" {
		return Transcript{}, &TranscriptError{Message: msg}
	}
	t := Transcript{Truncated: a.GetTruncated(), Messages: make([]TranscriptMessage, len(a.GetMessages()))}
	for i, m := range a.GetMessages() {
		t.Messages[i] = TranscriptMessage{Role: m.GetRole(), Text: m.GetText(), UnixNano: m.GetUnixNano()}
	}
	return t, nil
}
