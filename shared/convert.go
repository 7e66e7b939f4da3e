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

func eventToProto(ev Event) *pb.Event {
	switch {
	case ev.Message != nil:
		m := ev.Message
		return &pb.Event{Kind: &pb.Event_Message{Message: &pb.Message{
			Id: m.ID, ConversationId: m.ConversationID, ThreadId: m.ThreadID,
			UserId: m.UserID, UserName: m.UserName, GuildId: m.GuildID,
			Direct: m.Direct, Text: m.Text, UnixNano: m.UnixNano, ExpiresUnixNano: m.ExpiresUnixNano,
			Model: m.Model, Stateless: m.Stateless != nil, History: statelessToProto(m.Stateless),
		}}}
	case ev.Health != nil:
		h := ev.Health
		return &pb.Event{Kind: &pb.Event_Health{Health: &pb.Health{
			State: pb.HealthState(h.State), Message: h.Message, Fatal: fatalToProto(h.Fatal),
		}}}
	default:
		return nil
	}
}

func eventFromProto(ev *pb.Event) Event {
	if m := ev.GetMessage(); m != nil {
		return Event{Message: &Message{
			ID: m.GetId(), ConversationID: m.GetConversationId(), ThreadID: m.GetThreadId(),
			UserID: m.GetUserId(), UserName: m.GetUserName(), GuildID: m.GetGuildId(),
			Direct: m.GetDirect(), Text: m.GetText(), UnixNano: m.GetUnixNano(), ExpiresUnixNano: m.GetExpiresUnixNano(),
			Model: m.GetModel(), Stateless: statelessFromProto(m),
		}}
	}
	if h := ev.GetHealth(); h != nil {
		return Event{Health: &Health{
			State: HealthState(h.GetState()), Message: h.GetMessage(), Fatal: fatalFromProto(h.GetFatal()),
		}}
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

func replyToProto(r Reply) *pb.SendRequest {
	return &pb.SendRequest{
		ConversationId: r.ConversationID, ThreadId: r.ThreadID, ReplyToId: r.ReplyToID,
		Text: r.Text, Kind: pb.ReplyKind(r.Kind), Code: r.Code, Usage: usageToProto(r.Usage),
	}
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

func replyFromProto(req *pb.SendRequest) Reply {
	return Reply{
		ConversationID: req.GetConversationId(), ThreadID: req.GetThreadId(),
		ReplyToID: req.GetReplyToId(), Text: req.GetText(), Kind: ReplyKind(req.GetKind()), Code: req.GetCode(),
		Usage: usageFromProto(req.GetUsage()),
	}
}
