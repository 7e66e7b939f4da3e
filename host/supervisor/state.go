// Package supervisor runs each platform plugin as its own process: it starts
// it, watches its event stream, restarts it with capped, jittered backoff
// after transient failures, trips a crash-loop breaker, and stops it for good
// after a fatal error. One platform's failure never touches another.
package supervisor

import "time"

// State is a platform's lifecycle state, as shown in /v1/status.
type State string

// Platform states. A platform is Running only while its plugin reports that
// it is connected and receiving.
const (
	StateStarting State = "starting"
	StateRunning  State = "running"
	// StateDegraded: the plugin is up but reports it is not receiving now.
	StateDegraded State = "degraded"
	StateBackoff  State = "backoff"
	StateFailed   State = "failed"
	StateStopped  State = "stopped"
	StateDisabled State = "disabled"
	StateMissing  State = "missing"
	// StateStandby: another host of the cluster runs the platform (Status.HeldBy).
	StateStandby State = "standby"
)

// Status is a snapshot of one platform.
type Status struct {
	Name     string `json:"name"`
	Plugin   string `json:"plugin"`
	State    State  `json:"state"`
	Fatal    bool   `json:"fatal"`
	Error    string `json:"error,omitempty"`
	Hint     string `json:"hint,omitempty"`
	Restarts int    `json:"restarts"`
	// PID is the plugin process, 0 when none runs.
	PID   int       `json:"pid,omitempty"`
	Since time.Time `json:"since"`
	// Path is the plugin binary the platform runs (or looked for).
	Path string `json:"path,omitempty"`
	// HeldBy names the host of the cluster that runs a standby platform,
	// "" when none does right now.
	HeldBy string `json:"held_by,omitempty"`
}

// legal lists, for each state, the states the platform's loop may move to
// next. A platform replaced by a reload or a restart shows the new run's
// "starting" next.
var legal = map[State][]State{
	StateStarting: {StateRunning, StateDegraded, StateBackoff, StateFailed, StateMissing, StateStopped},
	StateRunning:  {StateDegraded, StateBackoff, StateFailed, StateStarting, StateStopped},
	StateDegraded: {StateRunning, StateBackoff, StateFailed, StateStarting, StateStopped},
	StateBackoff:  {StateStarting, StateMissing, StateStopped},
	StateMissing:  {StateStarting, StateStopped},
	StateFailed:   {StateStarting, StateStopped}, // starting: its binary was replaced
	StateDisabled: {StateStopped},
	StateStopped:  {},
}

// LegalTransition reports whether one run of a platform may move from one
// state to the next. Across a reload that replaces the platform (a changed
// config, a changed enabled), the new run starts again: any state may be
// followed by "starting" or "disabled" there, and a platform removed from
// the config disappears.
func LegalTransition(from, to State) bool {
	for _, s := range legal[from] {
		if s == to {
			return true
		}
	}
	return false
}

// StandbyText is how status shows a platform another host of the cluster
// runs: "standby (held by HOST)".
func StandbyText(holder string) string {
	if holder == "" {
		return "standby (no host holds it yet)"
	}
	return "standby (held by " + holder + ")"
}
