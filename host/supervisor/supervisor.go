package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/shared"
)

// ErrNotConnected is returned by Send and Typing when the platform has no
// connected plugin.
var ErrNotConnected = errors.New("platform is not connected")

// ErrUnknownPlatform is returned for a platform name the supervisor does not run.
var ErrUnknownPlatform = errors.New("unknown platform")

// Handler receives inbound messages. It is called from the platform's event
// loop and must return quickly.
type Handler func(platform string, msg *shared.Message)

// Inbox records the messages a plugin waits for (shared.Deliver) before
// the host acknowledges them, and keeps each platform's cursor; the session
// store is one.
type Inbox interface {
	// Take records message id of conversation conv from platform (body is
	// the message) and the platform's cursor after it, then calls done
	// (quickly, on any goroutine) once that is durable; dup reports an id
	// taken before. An empty id records only the cursor (a checkpoint).
	Take(platform, conv, id, cursor string, body []byte, done func(dup bool, err error))
	// Answered records that the message was answered (it does not wait).
	Answered(platform, conv, id string)
	// Pending returns the bodies of the platform's messages taken and not
	// answered.
	Pending(platform string) ([][]byte, error)
	// Cursor returns the platform's last recorded cursor, "" if none.
	Cursor(platform string) (string, error)
}

// Options configure a Supervisor.
type Options struct {
	// Logger is the host's logger; platforms log under "supervisor.NAME".
	Logger hclog.Logger
	// PluginLogger receives the plugins' own log lines, as "plugin.NAME".
	PluginLogger hclog.Logger
	// Handler receives inbound messages.
	Handler Handler
	// Inbox, if set, records messages before they are acknowledged and
	// handed to Handler, drops those taken before, and keeps cursors.
	Inbox Inbox
	// Transcripts, if set, answers the plugins' transcript requests
	// (shared.AskTranscript): the transcript of the session a direct
	// message in conv from platform goes to. It runs on a goroutine of its
	// own (it reads the store).
	Transcripts func(platform string, conv shared.Conversation) (shared.Transcript, error)
	// OnStateChange, if set, is called after a platform changes state.
	OnStateChange func(Status)
	// LogLevel is the plugins' log level.
	LogLevel string
}

// Supervisor runs a set of platforms.
type Supervisor struct {
	logger       hclog.Logger
	pluginLogger hclog.Logger
	handler      Handler
	inbox        Inbox
	transcripts  func(platform string, conv shared.Conversation) (shared.Transcript, error)
	onState      func(Status)

	ctx    context.Context
	cancel context.CancelFunc

	// unanswered holds the taken messages (platform, conversation, id)
	// whose answer has not been delivered yet; replayed the platforms
	// whose messages left unanswered by an earlier host were handed on.
	unansweredMu sync.Mutex
	unanswered   map[string]struct{}
	replayed     map[string]bool
	// toReplay holds what loadReplay read until the platform runs.
	toReplay map[string][]*shared.Message

	// handoff holds taken messages on their way to the handler, in the
	// order they were taken; handing is set while a goroutine drains it.
	// A message is taken on the store's committer, which must never wait
	// for the handler (the handler may write to the store itself).
	handoffMu sync.Mutex
	handoff   []handoffItem
	handing   bool
	// handoffClosed is set by Stop: a message taken after it stays in
	// the inbox, unanswered, and is handed on by the next run.
	handoffClosed bool
	handed        sync.WaitGroup

	mu        sync.Mutex
	platforms map[string]*platform
	order     []string
	level     string
	stopped   bool
	// loops counts the platforms' loops (replaced and removed ones until
	// their plugin is gone) and plugin calls made aside, for Stop.
	loops sync.WaitGroup
}

// New returns a supervisor that runs nothing until Apply.
func New(opts Options) *Supervisor {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.PluginLogger == nil {
		opts.PluginLogger = opts.Logger
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Supervisor{
		logger:       opts.Logger,
		pluginLogger: opts.PluginLogger,
		handler:      opts.Handler,
		inbox:        opts.Inbox,
		transcripts:  opts.Transcripts,
		onState:      opts.OnStateChange,
		ctx:          ctx,
		cancel:       cancel,
		platforms:    map[string]*platform{},
		level:        opts.LogLevel,
		unanswered:   map[string]struct{}{},
		replayed:     map[string]bool{},
		toReplay:     map[string][]*shared.Message{},
	}
}

// Apply makes the running set match specs: platforms added are started,
// removed ones stopped, changed ones (a different Fingerprint) restarted
// alone, and unchanged ones left untouched. It returns the names it started
// or restarted at once: the platforms' loops do the work, so Apply never
// waits on a plugin (a changed platform's new plugin starts once the old
// one is gone, as it may bind the same port).
func (s *Supervisor) Apply(specs []Spec) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	var started []string
	next := make(map[string]*platform, len(specs))
	order := make([]string, 0, len(specs))
	for _, spec := range specs {
		order = append(order, spec.Name)
		old, ok := s.platforms[spec.Name]
		if ok && old.spec.Fingerprint == spec.Fingerprint && old.spec.Path == spec.Path {
			next[spec.Name] = old
			continue
		}
		if ok {
			old.stop()
		}
		next[spec.Name] = s.newPlatformLocked(spec, old)
		started = append(started, spec.Name)
	}
	for name, old := range s.platforms {
		if _, ok := next[name]; !ok {
			old.stop()
		}
	}
	s.platforms = next
	s.order = order
	return started
}

// Restart stops a platform's plugin and starts it again with its current
// spec, for a binary replaced in place. It does not wait: the platform's
// loop does it. It is a no-op for an unknown name.
func (s *Supervisor) Restart(name string) {
	s.mu.Lock()
	p := s.platforms[name]
	s.mu.Unlock()
	if p != nil {
		p.requestRestart()
	}
}

// Poke tells a platform waiting for its binary to look again now.
func (s *Supervisor) Poke(name string) {
	s.mu.Lock()
	p := s.platforms[name]
	s.mu.Unlock()
	if p != nil {
		select {
		case p.poke <- struct{}{}:
		default:
		}
	}
}

// Statuses returns a snapshot of every platform, in config order.
func (s *Supervisor) Statuses() []Status {
	s.mu.Lock()
	ps := make([]*platform, 0, len(s.order))
	for _, name := range s.order {
		ps = append(ps, s.platforms[name])
	}
	s.mu.Unlock()
	out := make([]Status, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.snapshot())
	}
	return out
}

// Specs returns the specs of the platforms being run, in config order.
func (s *Supervisor) Specs() []Spec {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Spec, 0, len(s.order))
	for _, name := range s.order {
		out = append(out, s.platforms[name].spec)
	}
	return out
}

func (s *Supervisor) lookup(name string) (shared.PluginConn, error) {
	s.mu.Lock()
	p := s.platforms[name]
	s.mu.Unlock()
	if p == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownPlatform, name)
	}
	c := p.conn()
	if c == nil {
		return nil, fmt.Errorf("%s: %w", name, ErrNotConnected)
	}
	return c, nil
}

// Send delivers a reply through the named platform's plugin.
func (s *Supervisor) Send(ctx context.Context, name string, r shared.Reply) ([]string, error) {
	c, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	ids, err := c.Send(ctx, r)
	if err == nil {
		s.delivered(name, r)
	}
	return ids, err
}

// Streams reports whether the named platform's plugin shows streamed
// replies (protocol 2, a shared.Streamer whose config wants them).
func (s *Supervisor) Streams(name string) bool {
	c, err := s.lookup(name)
	return err == nil && c.Streams()
}

// SendPart sends one part of a streamed reply through the named platform's
// plugin (see shared.PluginConn.SendPart).
func (s *Supervisor) SendPart(ctx context.Context, name string, part shared.ReplyPart) ([]string, error) {
	c, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	ids, err := c.SendPart(ctx, part)
	if err == nil && (part.Phase == shared.PhaseEnd || part.Phase == shared.PhaseFail) {
		s.delivered(name, part.Reply)
	}
	return ids, err
}

// Typing shows a typing indicator through the named platform's plugin.
func (s *Supervisor) Typing(ctx context.Context, name string, conv shared.Conversation) error {
	c, err := s.lookup(name)
	if err != nil {
		return err
	}
	return c.Typing(ctx, conv)
}

// setLevelTimeout bounds the SetLogLevel call into each plugin.
const setLevelTimeout = 2 * time.Second

// SetLogLevel changes the plugins' log level, running ones included. The
// calls into the plugins are made at once, each with a deadline, and
// SetLogLevel returns when they are done or after setLevelTimeout: a frozen
// plugin delays a reload by that much at most.
func (s *Supervisor) SetLogLevel(level string) {
	s.mu.Lock()
	s.level = level
	if s.stopped {
		s.mu.Unlock()
		return
	}
	var calls sync.WaitGroup
	for _, p := range s.platforms {
		c := p.conn()
		if c == nil {
			continue
		}
		s.loops.Add(1)
		calls.Add(1)
		go func() {
			defer s.loops.Done()
			defer calls.Done()
			ctx, cancel := context.WithTimeout(s.ctx, setLevelTimeout)
			defer cancel()
			if err := c.SetLogLevel(ctx, level); err != nil && s.ctx.Err() == nil {
				p.logger.Warn("could not change the plugin's log level", "error", err)
			}
		}()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { calls.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(setLevelTimeout):
	}
}

func (s *Supervisor) logLevel() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.level
}

// take hands an inbound message on. One the plugin waits for (given with
// shared.Deliver), or one that moves the platform's cursor, is recorded in
// the inbox first, without blocking the platform's event loop: the record
// commits with others, then the plugin gets its acknowledgement and the
// message goes to the handler, unless it was taken before (the platform
// delivered it again because its plugin died before confirming it): then it
// is acknowledged again and dropped. A checkpoint (only a cursor) is
// recorded and acknowledged, and goes nowhere else.
func (s *Supervisor) take(p *platform, ev shared.Event) {
	m := ev.Message
	if m.IsCheckpoint() {
		s.checkpoint(p, ev)
		return
	}
	if s.inbox == nil || m.ID == "" || (!ev.WantsAck() && m.Cursor == "") {
		s.deliver(p.spec.Name, m)
		ev.Ack(nil)
		return
	}
	body, err := json.Marshal(m)
	if err != nil {
		ev.Ack(err)
		return
	}
	key := unansweredKey(p.spec.Name, m.ConversationID, m.ID)
	added := s.markUnanswered(key)
	s.inbox.Take(p.spec.Name, m.ConversationID, m.ID, m.Cursor, body, func(dup bool, err error) {
		if err != nil {
			if added {
				s.answered(key)
			}
			p.logger.Error("could not record an inbound message; the plugin will not confirm it", "id", m.ID, "error", err)
			ev.Ack(err)
			return
		}
		ev.Ack(nil)
		if dup {
			if added {
				s.answered(key)
			}
			p.logger.Debug("dropped a message taken before (delivered again)", "id", m.ID, "conversation", m.ConversationID)
			return
		}
		s.deliverLater(p.spec.Name, m)
	})
}

// checkpoint records a platform's cursor that moved with no message (see
// shared.Checkpoint) and acknowledges it once durable.
func (s *Supervisor) checkpoint(p *platform, ev shared.Event) {
	if s.inbox == nil {
		ev.Ack(nil)
		return
	}
	s.inbox.Take(p.spec.Name, "", "", ev.Message.Cursor, nil, func(_ bool, err error) {
		if err != nil {
			p.logger.Error("could not record the platform's position; the plugin will not move past it", "error", err)
		}
		ev.Ack(err)
	})
}

func unansweredKey(platform, conv, id string) string {
	return platform + "\x00" + conv + "\x00" + id
}

// markUnanswered notes a taken message as waiting for its answer; false if
// it already was.
func (s *Supervisor) markUnanswered(key string) bool {
	s.unansweredMu.Lock()
	defer s.unansweredMu.Unlock()
	if _, ok := s.unanswered[key]; ok {
		return false
	}
	s.unanswered[key] = struct{}{}
	return true
}

// answered forgets key, reporting whether it was waiting.
func (s *Supervisor) answered(key string) bool {
	s.unansweredMu.Lock()
	defer s.unansweredMu.Unlock()
	_, ok := s.unanswered[key]
	delete(s.unanswered, key)
	return ok
}

// delivered is called after a reply went out: the message it answers, if
// it was taken into the inbox, is recorded as answered.
func (s *Supervisor) delivered(name string, r shared.Reply) {
	if s.inbox == nil || r.ReplyToID == "" {
		return
	}
	if s.answered(unansweredKey(name, r.ConversationID, r.ReplyToID)) {
		s.inbox.Answered(name, r.ConversationID, r.ReplyToID)
	}
}

// Dismiss records that the host will not answer message m it took from
// the named platform (its access policy refused it): it is not handed on
// again after a restart, as an unanswered message would be.
func (s *Supervisor) Dismiss(name string, m *shared.Message) {
	if s.inbox == nil || m.ID == "" {
		return
	}
	if s.answered(unansweredKey(name, m.ConversationID, m.ID)) {
		s.inbox.Answered(name, m.ConversationID, m.ID)
	}
}

// loadReplay reads, once per host run and platform, the messages an
// earlier host took from it but did not answer before it died, and holds
// them for replay. It runs before the plugin runs, so that nothing this
// host takes is among them: a message this host took, answered and has not
// yet recorded as answered (that record commits after the reply) would
// otherwise look unanswered and be answered twice.
func (s *Supervisor) loadReplay(p *platform) {
	name := p.spec.Name
	s.unansweredMu.Lock()
	done := s.replayed[name]
	s.replayed[name] = true
	s.unansweredMu.Unlock()
	if done || s.inbox == nil {
		return
	}
	bodies, err := s.inbox.Pending(name)
	if err != nil {
		p.logger.Error("could not read the messages left unanswered", "error", err)
		return
	}
	var held []*shared.Message
	for _, b := range bodies {
		m := new(shared.Message)
		if err := json.Unmarshal(b, m); err != nil {
			p.logger.Warn("dropping an unreadable message left unanswered", "error", err)
			continue
		}
		// Marked now: the platform delivering it again meanwhile (a
		// resumed session replays) is dropped as taken before.
		if s.markUnanswered(unansweredKey(name, m.ConversationID, m.ID)) {
			held = append(held, m)
		}
	}
	s.unansweredMu.Lock()
	s.toReplay[name] = held
	s.unansweredMu.Unlock()
}

// replay hands on the messages loadReplay held, once the platform runs
// (a reply needs the plugin).
func (s *Supervisor) replay(p *platform) {
	name := p.spec.Name
	s.unansweredMu.Lock()
	held := s.toReplay[name]
	delete(s.toReplay, name)
	s.unansweredMu.Unlock()
	for _, m := range held {
		p.logger.Info("answering a message taken before the host restarted", "id", m.ID, "conversation", m.ConversationID)
		s.deliverLater(name, m)
	}
}

// cursor returns the platform's last recorded cursor.
func (s *Supervisor) cursor(name string) (string, error) {
	if s.inbox == nil {
		return "", nil
	}
	return s.inbox.Cursor(name)
}

func (s *Supervisor) deliver(name string, m *shared.Message) {
	if s.handler != nil {
		s.handler(name, m)
	}
}

type handoffItem struct {
	platform string
	msg      *shared.Message
}

// deliverLater hands m to the handler from another goroutine, after every
// message given to deliverLater before it. It never blocks.
func (s *Supervisor) deliverLater(name string, m *shared.Message) {
	s.handoffMu.Lock()
	defer s.handoffMu.Unlock()
	if s.handoffClosed {
		return
	}
	s.handoff = append(s.handoff, handoffItem{name, m})
	if s.handing {
		return
	}
	s.handing = true
	s.handed.Add(1)
	go s.drainHandoff()
}

// drainHandoff delivers queued messages until none is left.
func (s *Supervisor) drainHandoff() {
	defer s.handed.Done()
	for {
		s.handoffMu.Lock()
		if len(s.handoff) == 0 {
			s.handing = false
			s.handoff = nil
			s.handoffMu.Unlock()
			return
		}
		it := s.handoff[0]
		s.handoff[0] = handoffItem{}
		s.handoff = s.handoff[1:]
		s.handoffMu.Unlock()
		s.deliver(it.platform, it.msg)
	}
}

func (s *Supervisor) stateChanged(st Status) {
	if s.onState != nil {
		s.onState(st)
	}
}

// Stop stops every platform, each with its Stop call before it is killed,
// and waits for their processes to be gone. It is bounded: a plugin gets
// stopGrace for Stop, then is killed (SIGKILL after killWait at most).
func (s *Supervisor) Stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.cancel()
	s.loops.Wait()
	s.handoffMu.Lock()
	s.handoffClosed = true
	s.handoffMu.Unlock()
	s.handed.Wait()
}

// errNoTranscripts answers a transcript request when the host serves none.
var errNoTranscripts = errors.New("this gateway host serves no transcripts")

// transcript answers platform p's transcript request off its event loop.
// It is called from the loop (counted in loops), so Stop waits for it.
func (s *Supervisor) transcript(p *platform, req *shared.TranscriptRequest) {
	if s.transcripts == nil {
		req.Answer(shared.Transcript{}, errNoTranscripts)
		return
	}
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		req.Answer(s.transcripts(p.spec.Name, req.Conversation))
	}()
}
