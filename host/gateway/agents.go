package gateway

import (
	"github.com/plughost/gateway/host/agent"
	"github.com/plughost/gateway/host/router"
)

// agentsView adapts the agent service to the router's view of it.
type agentsView struct{ *agent.Service }

var (
	_ router.Agents          = agentsView{}
	_ router.StreamingAgents = agentsView{}
)

// Status implements router.Agents.
func (a agentsView) Status(key string) (router.SessionStatus, error) {
	info, err := a.Session(key)
	if err != nil {
		return router.SessionStatus{}, err
	}
	return router.SessionStatus{Model: info.Model, Messages: info.Messages}, nil
}
