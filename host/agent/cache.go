package agent

import (
	"container/list"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/shared"
)

// Reason says why an agent left the cache.
type Reason string

// The eviction reasons; each is counted separately.
const (
	ReasonCapacity    Reason = "capacity"     // LRU: the cache was full
	ReasonIdle        Reason = "idle"         // unused for idle_ttl
	ReasonReset       Reason = "reset"        // /new
	ReasonModelSwitch Reason = "model_switch" // /model
	ReasonReload      Reason = "reload"       // its provider, model or prompt settings changed
	ReasonShutdown    Reason = "shutdown"     // the host is stopping
)

// Reasons lists every Reason, for metrics.
var Reasons = []Reason{ReasonCapacity, ReasonIdle, ReasonReset, ReasonModelSwitch, ReasonReload, ReasonShutdown}

// ErrClosed is returned by a Service (or its cache) after Close.
var ErrClosed = errors.New("the agent service is shut down")

// CacheStats is a snapshot of the cache counters, as shown in /v1/status.
type CacheStats struct {
	Agents    int    `json:"agents"`
	MaxAgents int    `json:"max_agents"`
	Evictions uint64 `json:"evictions"`
	Closed    uint64 `json:"closed"`
	// Closing counts evicted agents whose close has not finished (waiting
	// for their reply, or for the grace period).
	Closing int `json:"closing"`
	// EvictionsByReason and ClosedByReason break the totals down.
	EvictionsByReason map[Reason]uint64 `json:"evictions_by_reason"`
	ClosedByReason    map[Reason]uint64 `json:"closed_by_reason"`
}

// cache is an LRU of live agents keyed by session, with an idle TTL. All of
// its state is guarded by one mutex that is held only for map and list
// operations: nothing under it does I/O or waits. Every removal goes through
// evictLocked, which hands the agent to retire, a goroutine that closes it
// off the message path once its reply has finished (or after a grace period,
// by cancelling that reply).
type cache struct {
	log   hclog.Logger
	now   func() time.Time
	grace time.Duration

	mu        sync.Mutex
	max       int
	ttl       time.Duration
	lru       *list.List // of *Agent, most recently used first
	byKey     map[string]*Agent
	flight    map[string]flight // operations in progress per session key
	evictions map[Reason]uint64
	closed    map[Reason]uint64
	closing   int
	shut      bool
	force     chan struct{} // closed at shutdown when the grace is cut short
	allClosed chan struct{} // closed whenever closing drops to 0 after shut

	wg sync.WaitGroup // retire goroutines

	// built, when set (tests), sees every agent the cache builds.
	built func(*Agent)
}

func newCache(max int, ttl, grace time.Duration, now func() time.Time, log hclog.Logger) *cache {
	return &cache{
		log:       log,
		now:       now,
		grace:     grace,
		max:       max,
		ttl:       ttl,
		lru:       list.New(),
		byKey:     make(map[string]*Agent),
		flight:    make(map[string]flight),
		evictions: make(map[Reason]uint64),
		closed:    make(map[Reason]uint64),
		force:     make(chan struct{}),
	}
}

// acquire returns the session's agent marked in use, building it with build
// on a miss or when the cached one's spec differs from want (the stale one is
// evicted with reason stale). build runs under the cache lock: it must only
// allocate, never do I/O or block. Every acquire must be paired with release.
func (c *cache) acquire(key string, want spec, stale Reason, build func() (*Agent, error)) (*Agent, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut {
		return nil, ErrClosed
	}
	if a, ok := c.byKey[key]; ok {
		if a.spec == want {
			a.inUse++
			c.lru.MoveToFront(a.elem)
			return a, nil
		}
		c.evictLocked(a, stale)
	}
	a, err := build()
	if err != nil {
		return nil, err
	}
	if c.built != nil {
		c.built(a)
	}
	a.inUse = 1
	a.lastUsed = c.now()
	a.elem = c.lru.PushFront(a)
	c.byKey[key] = a
	for c.lru.Len() > c.max {
		c.evictLocked(c.victimLocked(a), ReasonCapacity)
	}
	return a, nil
}

// victimLocked picks the least recently used idle agent, or when every agent
// is busy the least recently used one other than keep (its close then waits
// for its reply).
func (c *cache) victimLocked(keep *Agent) *Agent {
	for e := c.lru.Back(); e != nil; e = e.Prev() {
		if a := e.Value.(*Agent); a.inUse == 0 {
			return a
		}
	}
	for e := c.lru.Back(); e != nil; e = e.Prev() {
		if a := e.Value.(*Agent); a != keep {
			return a
		}
	}
	return keep
}

// release marks one use of a finished. When the agent was evicted meanwhile,
// the last release lets its retire goroutine close it.
func (c *cache) release(a *Agent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a.inUse--
	a.lastUsed = c.now()
	if a.inUse == 0 && a.idle != nil {
		close(a.idle)
	}
}

// evict removes the session's agent, if cached, and returns at once.
func (c *cache) evict(key string, reason Reason) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.byKey[key]
	if ok {
		c.evictLocked(a, reason)
	}
	return ok
}

// evictIf evicts every cached agent for which stale returns true. stale runs
// under the cache lock and must not block.
func (c *cache) evictIf(reason Reason, stale func(*Agent) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for e := c.lru.Front(); e != nil; {
		next := e.Next()
		if a := e.Value.(*Agent); stale(a) {
			c.evictLocked(a, reason)
			n++
		}
		e = next
	}
	return n
}

// evictLocked is the one eviction path. It unlinks the agent, counts the
// eviction and starts the goroutine that will close it; it never waits.
func (c *cache) evictLocked(a *Agent, reason Reason) {
	c.lru.Remove(a.elem)
	delete(c.byKey, a.key)
	a.elem = nil
	a.evicted = true
	a.sess, a.sessOK = sessionCopy{}, false // the copy goes with the agent
	a.reason = reason
	c.evictions[reason]++
	c.closing++
	var idle <-chan struct{}
	if a.inUse > 0 {
		a.idle = make(chan struct{})
		idle = a.idle
	}
	c.wg.Add(1)
	go c.retire(a, idle)
}

// retire closes an evicted agent once its reply has finished, or after the
// grace period by cancelling that reply first.
func (c *cache) retire(a *Agent, idle <-chan struct{}) {
	defer c.wg.Done()
	if idle != nil {
		t := time.NewTimer(c.grace)
		select {
		case <-idle:
		case <-t.C:
			c.log.Warn("evicted agent still replying after the grace period; cancelling its request",
				"session", shared.LogValue(a.key), "reason", a.reason, "grace", c.grace)
			a.client.Cancel()
			<-idle
		case <-c.force:
			a.client.Cancel()
			<-idle
		}
		t.Stop()
	}
	a.close()
	c.mu.Lock()
	c.closed[a.reason]++
	c.closing--
	if c.closing == 0 && c.allClosed != nil {
		close(c.allClosed)
		c.allClosed = nil
	}
	c.mu.Unlock()
}

// sweep evicts the agents unused for at least the idle TTL.
func (c *cache) sweep() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ttl <= 0 {
		return 0
	}
	now := c.now()
	n := 0
	for e := c.lru.Back(); e != nil; {
		prev := e.Prev()
		if a := e.Value.(*Agent); a.inUse == 0 && now.Sub(a.lastUsed) >= c.ttl {
			c.evictLocked(a, ReasonIdle)
			n++
		}
		e = prev
	}
	return n
}

// setLimits applies new limits, evicting (with reason) what no longer fits.
func (c *cache) setLimits(max int, ttl time.Duration, reason Reason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.max, c.ttl = max, ttl
	for c.lru.Len() > c.max {
		c.evictLocked(c.victimLocked(nil), reason)
	}
}

func (c *cache) limits() (int, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max, c.ttl
}

// stats returns a snapshot of the counters.
func (c *cache) stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := CacheStats{
		Agents:            c.lru.Len(),
		MaxAgents:         c.max,
		Closing:           c.closing,
		EvictionsByReason: make(map[Reason]uint64, len(c.evictions)),
		ClosedByReason:    make(map[Reason]uint64, len(c.closed)),
	}
	for r, n := range c.evictions {
		s.Evictions += n
		s.EvictionsByReason[r] = n
	}
	for r, n := range c.closed {
		s.Closed += n
		s.ClosedByReason[r] = n
	}
	return s
}

// shutdown evicts every agent and refuses new ones. It returns a channel
// closed once every evicted agent is closed.
func (c *cache) shutdown() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shut = true
	for e := c.lru.Front(); e != nil; {
		next := e.Next()
		c.evictLocked(e.Value.(*Agent), ReasonShutdown)
		e = next
	}
	done := make(chan struct{})
	if c.closing == 0 {
		close(done)
	} else {
		c.allClosed = done
	}
	return done
}

// cancelAll cuts every pending grace period short (shutdown deadline).
func (c *cache) cancelAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.force:
	default:
		close(c.force)
	}
}

// wait waits for every retire goroutine.
func (c *cache) wait() { c.wg.Wait() }
