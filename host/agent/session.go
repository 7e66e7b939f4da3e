package agent

import "github.com/plughost/gateway/host/provider"

// sessionCopy is what a turn needs of a stored session (store.Session):
// the epoch its turn is committed to, the model override and the
// transcript tail sent as history.
//
// A cached Agent keeps a copy of its session so that a turn on a cached
// agent reads nothing from the store. The store stays the source of truth,
// and the copy is trusted only while it equals what the store holds. That
// invariant is kept by the cache, under its lock:
//
//   - the copy is installed from a store read only if no operation on the
//     session (turn or session write) finished between the read and the
//     install (flight.finished is unchanged), so a read that may have missed a
//     write is never cached;
//   - every write to a session goes through the Service and is bracketed:
//     a turn from startTurn to endTurn, Reset and SetModel from beginWrite to
//     endWrite. While any other operation on the session is in flight a turn
//     does not use the copy but reads the store, as before caching;
//   - a committed turn is appended to the copy it started from (trimmed to
//     historyLimit); if the copy changed meanwhile, or the commit's outcome is
//     unknown, the copy is dropped and the next turn reloads it;
//   - a successful Reset or SetModel evicts the agent, and the copy with it;
//     a failed one (which may still land: its ctx ended while it was queued)
//     keeps the session in flight until the store has caught up, then drops
//     the copy;
//   - a reload (Apply) does not write the store; it evicts the agents whose
//     spec, history limit included, changed.
//
// A /new racing a running reply therefore behaves as when every turn read
// the store: the reply commits to the epoch it started with (the archive),
// its agent is evicted, and the next turn loads the new epoch.
type sessionCopy struct {
	epoch uint64
	model string             // the override; "" for the configured default
	tail  []provider.Message // the last historyLimit messages, oldest first
}

// flight counts the operations in progress on one session key. An entry
// exists only while ops > 0, so the map is bounded by the work in flight.
type flight struct {
	ops      int    // turns and session writes of the key in progress
	finished uint64 // operations on the key finished since the entry was made
}

// turnOutcome is what a finished turn did to the store.
type turnOutcome int

const (
	turnNoWrite   turnOutcome = iota // failed before committing: the store is unchanged
	turnCommitted                    // the turn is durably appended
	turnUnknown                      // the commit failed: the store may or may not hold it
)

func (c *cache) startOpLocked(key string) uint64 {
	f := c.flight[key]
	f.ops++
	c.flight[key] = f
	return f.finished
}

func (c *cache) finishOpLocked(key string) {
	f := c.flight[key]
	f.ops--
	f.finished++
	if f.ops <= 0 {
		delete(c.flight, key)
		return
	}
	c.flight[key] = f
}

// startTurn registers a turn of key; every startTurn that returns no error
// must be paired with endTurn. When the session's agent is cached with a
// trusted copy of its session and no other operation on key is in flight, it
// returns the agent marked in use (release it), that copy and its version,
// and hit is true. Either way it returns the key's finished count, for install.
func (c *cache) startTurn(key string) (a *Agent, sess sessionCopy, ver, finished uint64, hit bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut {
		return nil, sessionCopy{}, 0, 0, false, ErrClosed
	}
	finished = c.startOpLocked(key)
	a, ok := c.byKey[key]
	if !ok || !a.sessOK || c.flight[key].ops > 1 {
		return nil, sessionCopy{}, 0, finished, false, nil
	}
	a.inUse++
	c.lru.MoveToFront(a.elem)
	return a, a.sess, a.sessVer, finished, true, nil
}

// install caches sess, read from the store after the turn's startTurn
// returned finished count, as a's copy of its session, unless an operation on the
// session finished since (the read may have missed it) or a was evicted. It
// returns the copy's version and whether it was installed.
func (c *cache) install(a *Agent, sess sessionCopy, finished uint64) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a.evicted || c.flight[a.key].finished != finished {
		return 0, false
	}
	a.sess, a.sessOK = sess, true
	a.sessVer++
	return a.sessVer, true
}

// endTurn ends a turn of key started by startTurn. a is the agent the turn
// ran on (nil if it got none); trusted and ver say whether it started from
// a's cached copy at version ver. A committed turn extends that copy; any
// other write leaves the session's cached copy untrusted.
func (c *cache) endTurn(key string, a *Agent, trusted bool, ver uint64, out turnOutcome, msgs ...provider.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finishOpLocked(key)
	if out == turnNoWrite {
		return
	}
	cur, ok := c.byKey[key]
	if !ok || !cur.sessOK {
		return
	}
	if out == turnCommitted && cur == a && trusted && cur.sessVer == ver {
		cur.sess.tail = appendTail(cur.sess.tail, cur.spec.historyLimit, msgs...)
		cur.sessVer++
		return
	}
	cur.sessOK = false
}

// beginWrite registers a session write (Reset, SetModel) of key; pair it
// with endWrite once the write has landed or will never land.
func (c *cache) beginWrite(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.startOpLocked(key)
}

// endWrite ends a session write of key: the session's agent is evicted with
// reason, or when reason is "" (the write failed) only its copy is dropped.
func (c *cache) endWrite(key string, reason Reason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finishOpLocked(key)
	a, ok := c.byKey[key]
	if !ok {
		return
	}
	if reason != "" {
		c.evictLocked(a, reason)
		return
	}
	a.sessOK = false
}

// appendTail appends msgs to tail and keeps the last limit. It never writes
// into the part of the array that an earlier tail, handed to a turn, shows:
// append writes past the end, and the window only moves forward.
func appendTail(tail []provider.Message, limit int, msgs ...provider.Message) []provider.Message {
	tail = append(tail, msgs...)
	if len(tail) > limit {
		tail = tail[len(tail)-limit:]
	}
	return trimOrphans(tail)
}
