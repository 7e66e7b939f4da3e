package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/plughost/gateway/shared"
)

// Delivery defaults. A reply's delivery deadline is DeliveryTimeout plus
// DeliveryPerPart for each partBytes of its text (a platform that splits
// a long reply sends it in parts, each under its rate limit), counted from
// when it is queued.
const (
	DefaultDeliveryTimeout = 10 * time.Second
	DefaultDeliveryPerPart = 2 * time.Second
	DefaultDeliveryQueue   = 64
	DefaultDeliveryWorkers = 4
	// partBytes is the smallest part size of the platforms we serve
	// (Discord's 2000 characters): an estimate on the safe side.
	partBytes = 2000
)

// ErrDeliveryQueueFull is a delivery refused because the platform's
// delivery queue is full (the plugin is not taking replies).
var ErrDeliveryQueueFull = errors.New("the platform's delivery queue is full")

// ErrDeliveryExpired is a delivery whose deadline passed while it waited
// in the platform's delivery queue.
var ErrDeliveryExpired = errors.New("the reply waited too long to be sent")

// errDeliveriesClosed is a delivery refused because the router is closed.
var errDeliveriesClosed = errors.New("the gateway is shutting down")

// delivery is one reply on its way to a platform.
type delivery struct {
	platform string
	reply    shared.Reply
	timeout  time.Duration
	deadline time.Time
	// done gets the result once (buffered); nil when nobody waits for it,
	// and the outcome is only logged.
	done chan error
	// replyID, when set, makes this the last part of a streamed reply
	// (its start and deltas went to the platform as they came).
	replyID string
}

// outbox is one platform's delivery queue, with its own bound and
// workers: a slot for producing a reply is never held while it is
// delivered, and a platform that takes no replies fills only its own
// queue, never another platform's.
type outbox struct {
	items chan *delivery
	wg    sync.WaitGroup
}

// sendOne sends one reply to its platform; the one step of delivery that
// talks to the plugin (protocol v2 swaps it for a stream send).
func (r *Router) sendOne(ctx context.Context, d *delivery) error {
	if d.replyID != "" && r.streamSender != nil {
		phase := shared.PhaseEnd
		if d.reply.Kind != shared.KindReply {
			phase = shared.PhaseFail
		}
		_, err := r.streamSender.SendPart(ctx, d.platform, shared.ReplyPart{ReplyID: d.replyID, Phase: phase, Reply: d.reply})
		return err
	}
	_, err := r.opts.Sender.Send(ctx, d.platform, d.reply)
	return err
}

// deliveryTimeout is how long a reply of text may take to be delivered.
func (r *Router) deliveryTimeout(text string) time.Duration {
	parts := max(1, (len(text)+partBytes-1)/partBytes)
	return r.opts.DeliveryTimeout + time.Duration(parts)*r.opts.DeliveryPerPart
}

// queueDelivery puts a reply in its platform's outbox without waiting; the
// result comes on done when wait is set. A full outbox refuses it at once
// with ErrDeliveryQueueFull.
func (r *Router) queueDelivery(j *job, text string, kind shared.ReplyKind, wait bool) (*delivery, error) {
	return r.queueDeliveryPart(j, text, kind, wait, "")
}

// queueDeliveryPart is queueDelivery; a non-empty replyID makes the reply
// the end of that streamed reply.
func (r *Router) queueDeliveryPart(j *job, text string, kind shared.ReplyKind, wait bool, replyID string) (*delivery, error) {
	timeout := r.deliveryTimeout(text)
	d := &delivery{
		platform: j.platform,
		reply: shared.Reply{
			ConversationID: j.msg.ConversationID,
			ThreadID:       j.msg.ThreadID,
			ReplyToID:      j.msg.ID,
			Text:           text,
			Kind:           kind,
			Code:           j.code,
			Usage:          j.usage,
		},
		timeout:  timeout,
		deadline: time.Now().Add(timeout),
		replyID:  replyID,
	}
	if wait {
		d.done = make(chan error, 1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.outboxesClosed {
		return nil, errDeliveriesClosed
	}
	ob := r.outboxes[j.platform]
	if ob == nil {
		ob = &outbox{items: make(chan *delivery, r.opts.DeliveryQueue)}
		r.outboxes[j.platform] = ob
		for range r.opts.DeliveryWorkers {
			ob.wg.Add(1)
			go r.deliverLoop(ob)
		}
	}
	select {
	case ob.items <- d:
		return d, nil
	default:
		return nil, ErrDeliveryQueueFull
	}
}

// deliver sends text back to where j came from, answering j's message, and
// waits for the outcome.
func (r *Router) deliver(j *job, text string, kind shared.ReplyKind) error {
	return r.deliverPart(j, text, kind, "")
}

// deliverPart is deliver; a non-empty replyID ends that streamed reply.
func (r *Router) deliverPart(j *job, text string, kind shared.ReplyKind, replyID string) error {
	d, err := r.queueDeliveryPart(j, text, kind, true, replyID)
	if err == nil {
		err = <-d.done
	}
	if err != nil {
		r.logger.Warn("could not deliver a reply", "platform", j.platform, "session", shared.LogValue(j.key), "bytes", len(text), "error", err)
	}
	return err
}

// notify is deliver without waiting: for answers that need nothing done
// once they are sent (busy, /stop, /help).
func (r *Router) notify(j *job, text string, kind shared.ReplyKind) {
	if _, err := r.queueDelivery(j, text, kind, false); err != nil {
		r.logger.Warn("could not deliver a notice", "platform", j.platform, "session", shared.LogValue(j.key), "error", err)
	}
}

func (r *Router) deliverLoop(ob *outbox) {
	defer ob.wg.Done()
	for d := range ob.items {
		var err error
		if time.Now().After(d.deadline) {
			err = ErrDeliveryExpired
		} else {
			ctx, cancel := context.WithDeadline(r.deliveries, d.deadline)
			err = r.sendOne(ctx, d)
			if err != nil && ctx.Err() != nil && r.deliveries.Err() == nil {
				err = fmt.Errorf("not delivered within %s: %w", d.timeout, err)
			}
			cancel()
		}
		switch {
		case d.done != nil:
			d.done <- err
		case err != nil:
			r.logger.Warn("could not deliver a notice", "platform", d.platform, "error", err)
		}
	}
}

// closeOutboxes stops taking deliveries; the workers end once their
// queues are drained (or abandoned: see Close).
func (r *Router) closeOutboxes() {
	r.mu.Lock()
	first := !r.outboxesClosed
	r.outboxesClosed = true
	obs := make([]*outbox, 0, len(r.outboxes))
	for _, ob := range r.outboxes {
		if first {
			close(ob.items)
		}
		obs = append(obs, ob)
	}
	r.mu.Unlock()
	for _, ob := range obs {
		ob.wg.Wait()
	}
}
