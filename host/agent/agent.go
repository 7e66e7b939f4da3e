// Package agent is the gateway's agent layer: the live agent of each session,
// the cache that bounds how many exist, the providers they talk to and the
// session store that outlives them all. The router calls its facade, Service.
package agent

import (
	"sync"
	"sync/atomic"
	"time"

	"container/list"

	"github.com/plughost/gateway/host/provider"
)

// Agent is the live object of one session: its model, its provider client
// and a cached copy of its session. The transcript lives in the store, the
// source of truth (a rebuilt agent continues where an evicted one
// stopped); the copy saves a store read per turn and is kept equal to
// the store as the session type describes.
type Agent struct {
	key    string
	spec   spec
	client *provider.Client
	ref    *providerRef

	// Guarded by the cache's lock.
	elem     *list.Element
	inUse    int
	lastUsed time.Time
	evicted  bool
	reason   Reason
	idle     chan struct{} // made at eviction when in use; closed when the last user releases
	sess     sessionCopy   // the session's copy, meaningful only when sessOK
	sessOK   bool          // sess equals the store (see session)
	sessVer  uint64        // incremented at every change of sess

	closeOnce sync.Once
	closes    atomic.Int32 // how many times close ran its body: must end at 1
}

// spec is what an agent was built from. Two agents with equal specs are
// interchangeable; a cached agent whose spec no longer matches the session's
// is stale and is evicted.
type spec struct {
	ref           *providerRef // changes when the provider's settings change
	model         string       // full PROVIDER/MODEL
	remoteModel   string       // MODEL, as sent to the provider
	systemPrompt  string
	historyLimit  int
	agent         string // the agent's name
	tools         string // its tool patterns, joined by NUL
	maxToolRounds int
}

// Key returns the session key the agent serves.
func (a *Agent) Key() string { return a.key }

// Model returns the agent's PROVIDER/MODEL.
func (a *Agent) Model() string { return a.spec.model }

// close releases everything the agent holds: it cancels and waits for its
// requests, then drops its reference on the shared provider (closing the
// provider when it was retired by a reload and this was its last user).
// It runs its body exactly once.
func (a *Agent) close() {
	a.closeOnce.Do(func() {
		a.closes.Add(1)
		_ = a.client.Close()
		if a.ref != nil {
			a.ref.release()
		}
	})
}
