package shared

import "context"

// Deliver sends m to the host on events and waits until the host has taken
// it. A plugin confirms a message to its platform (a getUpdates offset, a
// Socket Mode ack, a sync token) only after Deliver returns nil, so a plugin
// killed in between loses nothing: the platform delivers the message again
// and the host drops the id it has already taken.
//
// It returns ctx's error when ctx ends first, or the transport's error when
// the message could not be handed to the host.
func Deliver(ctx context.Context, events chan<- Event, m *Message) error {
	taken := make(chan error, 1)
	select {
	case events <- Event{Message: m, Taken: taken}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-taken:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Checkpoint tells the host that the platform's position moved to cursor
// with no message to hand over (a sync that brought nothing for the bot,
// the very first one included), and waits until the host has recorded it.
// A plugin that tells "history" from "new" by its cursor (no cursor: this is
// the first start) checkpoints where it began, so a restart before its first
// message resumes there instead of taking what came meanwhile for history.
// It is a Message with only a Cursor (see IsCheckpoint); the host answers
// nothing for it, and a host that keeps no cursors (protocol 1) records
// nothing.
func Checkpoint(ctx context.Context, events chan<- Event, cursor string) error {
	return Deliver(ctx, events, &Message{Cursor: cursor})
}

// IsCheckpoint reports whether m only moves its platform's cursor (see
// Checkpoint): it has a cursor, and no id or text to answer.
func (m *Message) IsCheckpoint() bool { return m.ID == "" && m.Text == "" && m.Cursor != "" }

// Ack reports to whoever sent ev with Deliver whether the message was taken.
// It never blocks, and does nothing for an event without a Taken channel.
func (ev Event) Ack(err error) {
	if ev.ack != nil {
		ev.ack(err)
		return
	}
	if ev.Taken == nil {
		return
	}
	select {
	case ev.Taken <- err:
	default:
	}
}

// WantsAck reports whether the sender of ev waits for Ack: the message was
// given with Deliver, so its platform confirms it only once the host took it.
// The host records such a message durably before it acknowledges it.
func (ev Event) WantsAck() bool { return ev.Taken != nil || ev.ack != nil }
