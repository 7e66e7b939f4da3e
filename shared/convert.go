package shared

import (
	"encoding/json"
	"fmt"

	pb "github.com/plughost/gateway/shared/proto"
)

// Conversions between the Go contract and its protobuf wire form.

func attributeToProto(a Attribute) (*pb.Attribute, error) {
	out := &pb.Attribute{
		Name:        a.Name,
		Type:        pb.AttributeType(a.Type),
		Required:    a.Required,
		Sensitive:   a.Sensitive,
		Description: a.Description,
	}
	if a.Default != nil {
		b, err := json.Marshal(a.Default)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: encoding default: %w", a.Name, err)
		}
		out.DefaultJson = string(b)
	}
	return out, nil
}

func attributeFromProto(a *pb.Attribute) (Attribute, error) {
	out := Attribute{
		Name:        a.GetName(),
		Type:        AttributeType(a.GetType()),
		Required:    a.GetRequired(),
		Sensitive:   a.GetSensitive(),
		Description: a.GetDescription(),
	}
	if d := a.GetDefaultJson(); d != "" {
		var v any
		if err := json.Unmarshal([]byte(d), &v); err != nil {
			return Attribute{}, fmt.Errorf("attribute %q: decoding default: %w", a.Name, err)
		}
		if list, ok := v.([]any); ok {
			strs := make([]string, 0, len(list))
			for _, x := range list {
				s, _ := x.(string)
				strs = append(strs, s)
			}
			v = strs
		}
		out.Default = v
	}
	return out, nil
}

func fatalToProto(f *FatalError) *pb.Fatal {
	if f == nil {
		return nil
	}
	return &pb.Fatal{Code: f.Code, Message: f.Message, Hint: f.Hint}
}

func fatalFromProto(f *pb.Fatal) *FatalError {
	if f == nil {
		return nil
	}
	return &FatalError{Code: f.GetCode(), Message: f.GetMessage(), Hint: f.GetHint()}
}

func messageToProto(m *Message) *pb.Message {
	return &pb.Message{
		Id: m.ID, ConversationId: m.ConversationID, ThreadId: m.ThreadID,
		UserId: m.UserID, UserName: m.UserName, GuildId: m.GuildID,
		Direct: m.Direct, Text: m.Text, UnixNano: m.UnixNano, Cursor: m.Cursor, ExpiresUnixNano: m.ExpiresUnixNano,
		Stream: m.Stream, Model: m.Model, Stateless: m.Stateless != nil, History: statelessToProto(m.Stateless),
	}
}

func messageFromProto(m *pb.Message) *Message {
	return &Message{
		ID: m.GetId(), ConversationID: m.GetConversationId(), ThreadID: m.GetThreadId(),
		UserID: m.GetUserId(), UserName: m.GetUserName(), GuildID: m.GetGuildId(),
		Direct: m.GetDirect(), Text: m.GetText(), UnixNano: m.GetUnixNano(), Cursor: m.GetCursor(), ExpiresUnixNano: m.GetExpiresUnixNano(),
		Stream: m.GetStream(), Model: m.GetModel(), Stateless: statelessFromProto(m),
	}
}

func healthToProto(h *Health) *pb.Health {
	return &pb.Health{State: pb.HealthState(h.State), Message: h.Message, Fatal: fatalToProto(h.Fatal)}
}

func healthFromProto(h *pb.Health) *Health {
	return &Health{State: HealthState(h.GetState()), Message: h.GetMessage(), Fatal: fatalFromProto(h.GetFatal())}
}

func replyToProto(r Reply) *pb.SendRequest {
	return &pb.SendRequest{
		ConversationId: r.ConversationID, ThreadId: r.ThreadID, ReplyToId: r.ReplyToID,
		Text: r.Text, Kind: pb.ReplyKind(r.Kind), Code: r.Code, Usage: usageToProto(r.Usage),
	}
}

func replyFromProto(r *pb.SendRequest) Reply {
	return Reply{
		ConversationID: r.GetConversationId(), ThreadID: r.GetThreadId(),
		ReplyToID: r.GetReplyToId(), Text: r.GetText(), Kind: ReplyKind(r.GetKind()), Code: r.GetCode(),
		Usage: usageFromProto(r.GetUsage()),
	}
}

// phaseToProto maps a part's phase to the wire; 0 (a whole reply) is WHOLE.
func phaseToProto(p ReplyPhase) pb.ReplyPhase {
	switch p {
	case PhaseStart:
		return pb.ReplyPhase_REPLY_PHASE_START
	case PhaseDelta:
		return pb.ReplyPhase_REPLY_PHASE_DELTA
	case PhaseEnd:
		return pb.ReplyPhase_REPLY_PHASE_END
	case PhaseFail:
		return pb.ReplyPhase_REPLY_PHASE_FAIL
	default:
		return pb.ReplyPhase_REPLY_PHASE_WHOLE
	}
}

// phaseFromProto is phaseToProto's inverse: WHOLE (or unknown) is 0.
func phaseFromProto(p pb.ReplyPhase) ReplyPhase {
	switch p {
	case pb.ReplyPhase_REPLY_PHASE_START:
		return PhaseStart
	case pb.ReplyPhase_REPLY_PHASE_DELTA:
		return PhaseDelta
	case pb.ReplyPhase_REPLY_PHASE_END:
		return PhaseEnd
	case pb.ReplyPhase_REPLY_PHASE_FAIL:
		return PhaseFail
	default:
		return 0
	}
}

func eventToProto(ev Event) *pb.Event {
	switch {
	case ev.Message != nil:
		return &pb.Event{Kind: &pb.Event_Message{Message: messageToProto(ev.Message)}}
	case ev.Health != nil:
		return &pb.Event{Kind: &pb.Event_Health{Health: healthToProto(ev.Health)}}
	default:
		return nil
	}
}

func eventFromProto(ev *pb.Event) Event {
	if m := ev.GetMessage(); m != nil {
		return Event{Message: messageFromProto(m)}
	}
	if h := ev.GetHealth(); h != nil {
		return Event{Health: healthFromProto(h)}
	}
	return Event{}
}

func statelessToProto(st *Stateless) []*pb.HistoryMessage {
	if st == nil || len(st.History) == 0 {
		return nil
	}
	out := make([]*pb.HistoryMessage, len(st.History))
	for i, m := range st.History {
		out[i] = &pb.HistoryMessage{Role: m.Role, Text: m.Text}
	}
	return out
}

func statelessFromProto(m *pb.Message) *Stateless {
	if !m.GetStateless() {
		return nil
	}
	st := &Stateless{}
	if h := m.GetHistory(); len(h) > 0 {
		st.History = make([]HistoryMessage, len(h))
		for i, hm := range h {
			st.History[i] = HistoryMessage{Role: hm.GetRole(), Text: hm.GetText()}
		}
	}
	return st
}

func usageToProto(u *Usage) *pb.Usage {
	if u == nil {
		return nil
	}
	return &pb.Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens}
}

func usageFromProto(u *pb.Usage) *Usage {
	if u == nil {
		return nil
	}
	return &Usage{PromptTokens: u.GetPromptTokens(), CompletionTokens: u.GetCompletionTokens()}
}
