package gateway

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/plughost/gateway/host/agent"
	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/host/supervisor"
	"github.com/plughost/gateway/host/tools"
	"github.com/plughost/gateway/host/version"
)

// Status is the document served at /v1/status.
type Status struct {
	PID       int                 `json:"pid"`
	Version   string              `json:"version"`
	UptimeS   int64               `json:"uptime_s"`
	StartedAt time.Time           `json:"started_at"`
	Config    string              `json:"config"`
	Platforms []supervisor.Status `json:"platforms"`
	Cache     agent.CacheStats    `json:"cache"`
	Store     store.Health        `json:"store"`
	MCP       []tools.Status      `json:"mcp"`
	// Cluster is set when the host is one of a cluster's.
	Cluster     *ClusterStatus `json:"cluster,omitempty"`
	ReloadError string         `json:"reload_error,omitempty"`
}

// ClusterStatus is the cluster a host belongs to, in /v1/status.
type ClusterStatus struct {
	Name string `json:"name"`
	// Host is how the cluster names this host (in other hosts' held_by).
	Host     string `json:"host"`
	LeaseTTL string `json:"lease_ttl"`
}

// Status returns the host's status.
func (h *Host) Status() Status {
	h.mu.Lock()
	reloadErr := h.reloadErr
	cfgPath := h.cfg.Path
	h.mu.Unlock()
	var cl *ClusterStatus
	if c := h.Config().Cluster; c != nil && h.cluster != nil {
		cl = &ClusterStatus{Name: c.Name, Host: h.cluster.HostName(), LeaseTTL: c.LeaseTTL.String()}
	}
	return Status{
		Cluster:     cl,
		PID:         os.Getpid(),
		Version:     version.Version,
		UptimeS:     int64(time.Since(h.started).Seconds()),
		StartedAt:   h.started.UTC(),
		Config:      cfgPath,
		Platforms:   h.platformStatuses(),
		Cache:       h.agents.Stats(),
		Store:       h.agents.StoreHealth(),
		MCP:         h.tools.Status(),
		ReloadError: reloadErr,
	}
}

// Ready reports whether every enabled platform is running and the store
// can write; if not, it names what is not.
func (h *Host) Ready() (bool, string) {
	var notReady []string
	if st := h.agents.StoreHealth(); st.State != store.StateOK {
		notReady = append(notReady, fmt.Sprintf("the session store cannot write (%s)", st.LastError))
	}
	for _, st := range h.platformStatuses() {
		if st.State != supervisor.StateRunning && st.State != supervisor.StateDisabled && st.State != supervisor.StateStandby {
			notReady = append(notReady, fmt.Sprintf("%s is %s", st.Name, st.State))
		}
	}
	if len(notReady) > 0 {
		return false, strings.Join(notReady, ", ")
	}
	return true, ""
}
