// Package router turns inbound platform messages into agent turns: it keys
// each message to a session, runs one message at a time per session in
// arrival order (sessions run concurrently, up to a bound), answers chat
// commands, and sends replies back through the platform.
package router

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/shared"
)

// Agents is the agent layer as the router sees it.
type Agents interface {
	// Reply produces the agent's reply to text in the session key and
	// records the turn durably before it returns.
	Reply(ctx context.Context, key, text string) (Answer, error)
	// ReplyWith is Reply for a turn with options (its own model, or a
	// stateless turn, which records nothing and whose Answer.Turn is nil).
	ReplyWith(ctx context.Context, key, text string, opts TurnOptions) (Answer, error)
	// MarkUndelivered marks a recorded turn whose reply could not be
	// delivered: it stays in the transcript, out of the model's history.
	MarkUndelivered(ctx context.Context, key string, turn any) error
	// Reset starts a fresh session (the old transcript is archived).
	Reset(ctx context.Context, key string) error
	// Model returns the session's effective model, PROVIDER/MODEL.
	Model(key string) (string, error)
	// SetModel switches the session's model.
	SetModel(ctx context.Context, key, model string) error
	// Models lists the configured providers, for /model.
	Models() []string
	// Status describes the session.
	Status(key string) (SessionStatus, error)
}

// Answer is a recorded turn's reply.
type Answer struct {
	Text string
	// Turn names the recorded turn for MarkUndelivered; opaque here. Nil
	// when nothing was recorded (a stateless turn).
	Turn any
	// Usage is the token usage the provider reported, nil for none; the
	// reply carries it to the platform.
	Usage *shared.Usage
}

// TurnOptions are what a message asks of its turn beyond its text (see
// shared.Message).
type TurnOptions struct {
	// Model, when set, is the PROVIDER/MODEL of this turn only.
	Model string
	// Stateless: History, then the text, is the whole conversation;
	// nothing is read from or written to the session.
	Stateless bool
	History   []shared.HistoryMessage
	// OnDelta, when set, is called with each piece of text as the
	// provider streams it.
	OnDelta func(string)
}

// ReplyCoder is a failure whose reply carries a machine-readable code
// (shared.Reply.Code), such as shared.CodeModelNotFound.
type ReplyCoder interface {
	error
	ReplyCode() string
}

// SessionStatus is what /status shows about a session.
type SessionStatus struct {
	// Agent is the name of the agent serving the session.
	Agent    string
	Model    string
	Messages int
}

// Sender delivers replies through platforms (the supervisor).
type Sender interface {
	Send(ctx context.Context, platform string, r shared.Reply) ([]string, error)
	Typing(ctx context.Context, platform string, conv shared.Conversation) error
}

// StreamingAgents is Agents that can stream a reply as it is written.
type StreamingAgents interface {
	// ReplyStream is Reply that calls onDelta with each piece of text as
	// the provider produces it; the whole reply is committed, then
	// returned, exactly as with Reply.
	ReplyStream(ctx context.Context, key, text string, onDelta func(string)) (Answer, error)
}

// StreamSender is a Sender that can stream replies to the platforms that
// show them (protocol 2 plugins that are shared.Streamers).
type StreamSender interface {
	// Streams reports whether platform shows streamed replies now.
	Streams(platform string) bool
	// SendPart sends one part of a streamed reply; Start and Delta are
	// queued without waiting, End and Fail wait for the platform.
	SendPart(ctx context.Context, platform string, part shared.ReplyPart) ([]string, error)
}

// UserError is an error whose message is fit to show the user as it is.
type UserError interface {
	error
	UserMessage() string
}

// FailureDetails is an agent failure that knows how to be logged: the
// level it deserves and key/value pairs with its cause (HTTP status, the
// provider's message, attempts), never secrets.
type FailureDetails interface {
	error
	LogDetails() (hclog.Level, []any)
}

// Scope is how a platform's messages map to sessions.
type Scope string

// Session scopes.
const (
	// ScopeConversation: one session per conversation (and thread).
	ScopeConversation Scope = "conversation"
	// ScopeUser: in group chats, one session per user per conversation.
	ScopeUser Scope = "user"
)

// Defaults for zero Options (hand-built ones, in tests): the host passes
// the config's values, which a test in host/gateway keeps equal to these.
const (
	DefaultMaxConcurrent = 64
	DefaultReplyTimeout  = 5 * time.Minute
)

// Options configure a Router.
type Options struct {
	Agents Agents
	Sender Sender
	Logger hclog.Logger
	// MaxConcurrent bounds how many replies are produced at once.
	MaxConcurrent int
	// QueueLimit bounds the messages waiting behind a busy session; 0
	// means no queue: a message to a busy session is answered "busy".
	QueueLimit int
	// ReplyTimeout bounds one reply.
	ReplyTimeout time.Duration
	// TypingDelay is how long a reply may take before the typing
	// indicator is shown; default 500ms.
	TypingDelay time.Duration
	// TypingInterval is how often the typing indicator is refreshed.
	TypingInterval time.Duration
	// Observe, if set, is called after each reply is sent.
	Observe func(platform string, took time.Duration, err error)
	// DeliveryTimeout and DeliveryPerPart make a reply's delivery deadline
	// (base + per part of its text); DeliveryQueue bounds the replies
	// waiting per platform and DeliveryWorkers sends them, per platform.
	DeliveryTimeout time.Duration
	DeliveryPerPart time.Duration
	DeliveryQueue   int
	DeliveryWorkers int
}

// Router routes messages to sessions.
type Router struct {
	opts   Options
	logger hclog.Logger
	sem    chan struct{}
	// streamAgents and streamSender are set when both sides can stream.
	streamAgents StreamingAgents
	streamSender StreamSender
	replyIDs     atomic.Uint64
	replyIDBase  string

	mu       sync.Mutex
	sessions map[string]*sessionQueue
	scopes   map[string]Scope
	closing  bool
	// shutdown is set once Close stops waiting: every reply still to run
	// is cancelled with errShutdown instead of being started.
	shutdown bool
	workers  sync.WaitGroup

	outboxes       map[string]*outbox
	outboxesClosed bool
	// deliveries is the parent of every delivery's context: Close
	// cancels it once it stops waiting for them.
	deliveries      context.Context
	abandonDelivery context.CancelFunc
}

// job is one inbound message on its way through a session: a turn for the
// agent, or a command that writes the session (cmd set).
type job struct {
	platform string
	key      string
	msg      *shared.Message
	cmd, arg string
	// code is the Reply.Code of the turn's failure, if it has one; usage
	// the Reply.Usage of its answer.
	code  string
	usage *shared.Usage
}

// sessionQueue is the live routing state of one session key: the FIFO of
// messages waiting and the reply in progress. It exists only while the
// session has work.
type sessionQueue struct {
	queue   []*job
	running bool
	current *job
	cancel  context.CancelCauseFunc
}

// errStopped is the cause a reply is cancelled with by /stop or /new.
var errStopped = errors.New("stopped by the user")

// errShutdown is the cause a reply is cancelled with when the host stops.
var errShutdown = errors.New("the gateway is shutting down")

// New returns a router.
func New(opts Options) *Router {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	opts.QueueLimit = max(opts.QueueLimit, 0)
	if opts.ReplyTimeout <= 0 {
		opts.ReplyTimeout = DefaultReplyTimeout
	}
	if opts.TypingDelay <= 0 {
		opts.TypingDelay = 500 * time.Millisecond
	}
	if opts.TypingInterval <= 0 {
		opts.TypingInterval = 8 * time.Second
	}
	if opts.DeliveryTimeout <= 0 {
		opts.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if opts.DeliveryPerPart <= 0 {
		opts.DeliveryPerPart = DefaultDeliveryPerPart
	}
	if opts.DeliveryQueue <= 0 {
		opts.DeliveryQueue = DefaultDeliveryQueue
	}
	if opts.DeliveryWorkers <= 0 {
		opts.DeliveryWorkers = DefaultDeliveryWorkers
	}
	deliveries, abandon := context.WithCancel(context.Background())
	r := &Router{
		opts:            opts,
		logger:          opts.Logger,
		sem:             make(chan struct{}, opts.MaxConcurrent),
		sessions:        map[string]*sessionQueue{},
		scopes:          map[string]Scope{},
		outboxes:        map[string]*outbox{},
		deliveries:      deliveries,
		abandonDelivery: abandon,
		replyIDBase:     strconv.FormatInt(time.Now().UnixNano(), 36),
	}
	sa, okA := opts.Agents.(StreamingAgents)
	ss, okS := opts.Sender.(StreamSender)
	if okA && okS {
		r.streamAgents, r.streamSender = sa, ss
	}
	return r
}

// SetLimits changes the queue limit and reply timeout, for a reload. A
// queue limit of 0 means no queue, as in Options; a negative one, or a
// reply timeout that is not positive, keeps the current value.
// MaxConcurrent is fixed for the router's life.
func (r *Router) SetLimits(queueLimit int, replyTimeout time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if queueLimit >= 0 {
		r.opts.QueueLimit = queueLimit
	}
	if replyTimeout > 0 {
		r.opts.ReplyTimeout = replyTimeout
	}
}

func (r *Router) replyTimeout() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opts.ReplyTimeout
}

// SetScope sets how a platform's messages map to sessions.
func (r *Router) SetScope(platform string, s Scope) {
	r.mu.Lock()
	r.scopes[platform] = s
	r.mu.Unlock()
}

// Key returns the session key of a message: platform, conversation and
// thread, plus the user in group chats when the platform's scope is user.
func (r *Router) Key(platform string, m *shared.Message) string {
	r.mu.Lock()
	scope := r.scopes[platform]
	r.mu.Unlock()
	var b strings.Builder
	b.Grow(len(platform) + len(m.ConversationID) + len(m.ThreadID) + len(m.UserID) + 3)
	b.WriteString(platform)
	b.WriteByte(':')
	b.WriteString(m.ConversationID)
	if m.ThreadID != "" && m.ThreadID != m.ConversationID {
		b.WriteByte(':')
		b.WriteString(m.ThreadID)
	}
	if scope == ScopeUser && !m.Direct && m.UserID != "" {
		b.WriteString(":u:")
		b.WriteString(m.UserID)
	}
	return b.String()
}

// Handle takes one inbound message. It returns at once: it neither writes
// the store nor calls the plugin. Turns and commands that write the session
// (/new, /model X) go through the session's queue; answers that need
// neither (/stop, /help, /status, busy) are queued for delivery.
func (r *Router) Handle(platform string, m *shared.Message) {
	j := &job{platform: platform, key: r.Key(platform, m), msg: m}
	if m.Stateless != nil {
		// No session and no commands: a queue of its own, so it never
		// waits behind another request.
		j.key = platform + statelessKey + m.ID
		r.enqueue(j)
		return
	}
	text := strings.TrimSpace(m.Text)
	if cmd, arg, ok := parseCommand(text); ok {
		r.command(j, cmd, arg)
		return
	}
	r.enqueue(j)
}

func (r *Router) enqueue(j *job) {
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		r.notify(j, errShutdown.Error(), shared.KindError)
		return
	}
	s := r.sessions[j.key]
	if s == nil {
		s = &sessionQueue{}
		r.sessions[j.key] = s
	}
	if s.running && len(s.queue) >= r.opts.QueueLimit {
		n := len(s.queue)
		r.mu.Unlock()
		text := fmt.Sprintf("Busy: %d messages are already waiting in this session. Send it again once the current reply is done, or /stop it.", n)
		if n == 0 {
			text = "Busy: this session is still answering. Send it again once the current reply is done, or /stop it."
		}
		r.notify(j, text, shared.KindBusy)
		return
	}
	s.queue = append(s.queue, j)
	if !s.running {
		s.running = true
		r.workers.Add(1)
		go r.work(j.key, s)
	}
	r.mu.Unlock()
}

// work runs the session's queued messages one at a time, in order, and
// removes the session when its queue is empty.
func (r *Router) work(key string, s *sessionQueue) {
	defer r.workers.Done()
	for {
		r.mu.Lock()
		if len(s.queue) == 0 {
			s.running = false
			s.current, s.cancel = nil, nil
			if r.sessions[key] == s {
				delete(r.sessions, key)
			}
			r.mu.Unlock()
			return
		}
		j := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		ctx, cancel := context.WithCancelCause(context.Background())
		if r.shutdown {
			cancel(errShutdown)
		}
		if j.cmd == "" {
			s.current, s.cancel = j, cancel
		}
		r.mu.Unlock()

		if j.cmd != "" {
			r.sessionCommand(ctx, j)
		} else {
			r.turn(ctx, j)
		}
		cancel(nil)
	}
}

// statelessKey joins a stateless message's platform and id into the key of
// its one-turn queue (and of its agent's route: the platform comes first).
const statelessKey = "::stateless:"

// reply asks the agents for j's reply, with the message's turn options,
// streamed to st when it is set.
func (r *Router) reply(ctx context.Context, j *job, st *stream) (Answer, error) {
	m := j.msg
	var onDelta func(string)
	if st != nil {
		onDelta = st.delta
	}
	if m.Model == "" && m.Stateless == nil {
		if onDelta != nil {
			return r.streamAgents.ReplyStream(ctx, j.key, m.Text, onDelta)
		}
		return r.opts.Agents.Reply(ctx, j.key, m.Text)
	}
	opts := TurnOptions{Model: m.Model, OnDelta: onDelta}
	if m.Stateless != nil {
		opts.Stateless, opts.History = true, m.Stateless.History
	}
	return r.opts.Agents.ReplyWith(ctx, j.key, m.Text, opts)
}

// expired reports whether the platform has stopped waiting for j's reply.
func expired(j *job) bool {
	return j.msg.ExpiresUnixNano != 0 && time.Now().UnixNano() >= j.msg.ExpiresUnixNano
}

// turn produces and delivers the reply to one message.
func (r *Router) turn(ctx context.Context, j *job) {
	if ctx.Err() != nil {
		// Cancelled before it started (shutdown): a free slot must not
		// win the select below and run it anyway.
		r.deliver(j, cancelText(ctx), shared.KindNotice)
		return
	}
	if expired(j) {
		r.logger.Info("the platform stopped waiting before the turn started; not asking the agent", "platform", j.platform, "session", shared.LogValue(j.key))
		return
	}
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		r.deliver(j, cancelText(ctx), shared.KindNotice)
		return
	}
	slotHeld := true
	release := func() {
		if slotHeld {
			slotHeld = false
			<-r.sem
		}
	}
	defer release()
	r.mu.Lock()
	shutdown := r.shutdown
	r.mu.Unlock()
	if shutdown {
		// The slot was freed by a reply Close cancelled, possibly before
		// Close reached this session: do not start a reply now.
		release()
		r.deliver(j, shutdownText, shared.KindNotice)
		return
	}
	if expired(j) {
		release()
		r.logger.Info("the platform stopped waiting before the turn started; not asking the agent", "platform", j.platform, "session", shared.LogValue(j.key))
		return
	}

	start := time.Now()
	timeout := r.replyTimeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stopTyping := r.typing(ctx, j)
	ctx = WithOrigin(ctx, Origin{Platform: j.platform, UserID: j.msg.UserID, Direct: j.msg.Direct})
	var st *stream
	if j.msg.Stream && r.streamSender != nil && r.streamSender.Streams(j.platform) {
		st = r.newStream(j)
	}
	ans, err := r.reply(ctx, j, st)
	stopTyping()
	// The slot is for producing the reply, not for delivering it.
	release()
	var text string
	kind := shared.KindError
	switch {
	case err == nil:
		text, kind, j.usage = ans.Text, shared.KindReply, ans.Usage
	case context.Cause(ctx) == errStopped || context.Cause(ctx) == errShutdown:
		text, kind = cancelText(ctx), shared.KindNotice
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		// Whatever the agent returned once its time was up (a wrapped
		// deadline, a reset stream), the reason is the timeout.
		text = fmt.Sprintf("The agent did not reply within %s.", timeout)
	default:
		r.logFailure(j, err)
		text = userText(err)
		if rc := ReplyCoder(nil); errors.As(err, &rc) {
			j.code = rc.ReplyCode()
		}
	}
	replyID := ""
	if st != nil && st.started {
		replyID = st.id // the platform shows its start: end it
	}
	derr := r.deliverPart(j, text, kind, replyID)
	if err == nil && derr != nil {
		r.undelivered(j, ans, derr)
	}
	if derr == nil {
		r.logger.Debug("reply delivered", "platform", j.platform, "session", shared.LogValue(j.key), "kind", kind, "took", time.Since(start).Round(time.Microsecond))
	}
	if r.opts.Observe != nil {
		r.opts.Observe(j.platform, time.Since(start), err)
	}
}

// undeliveredMarkTimeout bounds marking a turn undelivered.
const undeliveredMarkTimeout = 10 * time.Second

// undelivered handles a recorded reply that could not be delivered: the
// turn is marked so (the model does not see it as answered next time) and
// the user is told, where the platform still takes a message.
func (r *Router) undelivered(j *job, ans Answer, derr error) {
	if ans.Turn == nil {
		r.logger.Warn("reply not delivered (a stateless turn: nothing was recorded)", "platform", j.platform, "bytes", len(ans.Text), "error", derr)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), undeliveredMarkTimeout)
	defer cancel()
	if err := r.opts.Agents.MarkUndelivered(ctx, j.key, ans.Turn); err != nil {
		r.logger.Error("could not mark an undelivered reply in the transcript", "session", shared.LogValue(j.key), "error", err)
	} else {
		r.logger.Warn("reply not delivered; marked undelivered in the transcript", "platform", j.platform, "session", shared.LogValue(j.key), "bytes", len(ans.Text), "error", derr)
	}
	if errors.Is(derr, ErrDeliveryQueueFull) || errors.Is(derr, ErrDeliveryExpired) || errors.Is(derr, errDeliveriesClosed) {
		return // the platform is not taking replies: a notice would not get through either
	}
	r.notify(j, fmt.Sprintf("The reply could not be delivered (%v); it was not kept as part of the conversation.", derr), shared.KindError)
}

// logFailure logs a failed turn at the failure's level, with its cause.
func (r *Router) logFailure(j *job, err error) {
	level, fields := hclog.Warn, []any{"platform", j.platform, "session", shared.LogValue(j.key), "error", err.Error()}
	var fd FailureDetails
	if errors.As(err, &fd) {
		var more []any
		level, more = fd.LogDetails()
		fields = append(fields, more...)
	}
	r.logger.Log(level, "agent failed", fields...)
}

// shutdownText answers a message whose reply was cancelled by Close.
const shutdownText = "The gateway is shutting down; this reply was cancelled."

func cancelText(ctx context.Context) string {
	if context.Cause(ctx) == errShutdown {
		return shutdownText
	}
	return "Stopped."
}

func userText(err error) string {
	var ue UserError
	if errors.As(err, &ue) {
		return ue.UserMessage()
	}
	return "The agent could not reply: " + err.Error()
}

// typingCallTimeout bounds one typing indicator call into the plugin.
const typingCallTimeout = 5 * time.Second

// typing shows the typing indicator until the returned func is called. The
// first one waits TypingDelay: a reply faster than that never shows it (and
// costs no call to the plugin); a slow one shows it, refreshed every
// TypingInterval. Timers, not a goroutine per turn, drive it.
func (r *Router) typing(ctx context.Context, j *job) func() {
	ctx, cancel := context.WithCancel(ctx)
	conv := shared.Conversation{ConversationID: j.msg.ConversationID, ThreadID: j.msg.ThreadID}
	var (
		mu      sync.Mutex
		stopped bool
		calls   sync.WaitGroup // a Typing call in progress
		timer   *time.Timer
	)
	tick := func() {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		calls.Add(1)
		mu.Unlock()
		defer calls.Done()
		callCtx, cancelCall := context.WithTimeout(ctx, typingCallTimeout)
		err := r.opts.Sender.Typing(callCtx, j.platform, conv)
		cancelCall()
		if err != nil && ctx.Err() == nil {
			r.logger.Debug("typing indicator failed", "platform", j.platform, "error", err)
		}
		mu.Lock()
		if !stopped {
			timer.Reset(r.opts.TypingInterval)
		}
		mu.Unlock()
	}
	mu.Lock()
	timer = time.AfterFunc(r.opts.TypingDelay, tick)
	mu.Unlock()
	return func() {
		cancel()
		mu.Lock()
		stopped = true
		timer.Stop()
		mu.Unlock()
		calls.Wait()
	}
}

// cancelRunning cancels the session's reply in progress and, when
// dropQueue, answers and drops the messages waiting behind it. It reports
// whether a reply was running.
func (r *Router) cancelRunning(key string, cause error, dropQueue bool) bool {
	r.mu.Lock()
	s := r.sessions[key]
	if s == nil {
		r.mu.Unlock()
		return false
	}
	running := s.cancel != nil
	if running {
		s.cancel(cause)
	}
	var dropped []*job
	if dropQueue {
		dropped, s.queue = s.queue, nil
	}
	r.mu.Unlock()
	for _, j := range dropped {
		r.notify(j, "Stopped before it was answered.", shared.KindNotice)
	}
	return running
}

// Busy reports whether the session has a reply in progress and how many
// messages wait behind it.
func (r *Router) Busy(key string) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sessions[key]
	if s == nil {
		return false, 0
	}
	return s.cancel != nil, len(s.queue)
}

// deliveryGrace is how long deliveries may still take once Close stops
// waiting for replies (the "shutting down" notices of cancelled ones).
const deliveryGrace = 2 * time.Second

// Close stops taking messages, lets the replies in progress finish (and be
// delivered) until ctx ends, then cancels whatever still runs, gives the
// deliveries deliveryGrace more, and waits for it all to end.
func (r *Router) Close(ctx context.Context) {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.workers.Wait(); close(done) }()
	abandon := func() {}
	defer func() { abandon() }()
	select {
	case <-done:
	case <-ctx.Done():
		r.mu.Lock()
		r.shutdown = true
		for _, s := range r.sessions {
			if s.cancel != nil {
				s.cancel(errShutdown)
			}
		}
		r.mu.Unlock()
		t := time.AfterFunc(deliveryGrace, r.abandonDelivery)
		abandon = func() { t.Stop() }
		<-done
	}
	obDone := make(chan struct{})
	go func() { r.closeOutboxes(); close(obDone) }()
	select {
	case <-obDone:
	case <-ctx.Done():
		t := time.AfterFunc(deliveryGrace, r.abandonDelivery)
		<-obDone
		t.Stop()
	}
	r.abandonDelivery()
}
