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
