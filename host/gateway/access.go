package gateway

import (
	"context"
	"encoding/json"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/host/access"
	"github.com/plughost/gateway/host/config"
	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/host/supervisor"
	"github.com/plughost/gateway/shared"
)

// sendVia sends the gate's notices through the supervisor, which exists
// only after the gate is built.
type sendVia struct{ h *Host }

func (s sendVia) Send(ctx context.Context, platform string, r shared.Reply) ([]string, error) {
	return unitSender{s.h}.Send(ctx, platform, r)
}

var _ access.Sender = sendVia{}

func newGate(h *Host, st store.Backend, logger hclog.Logger) (*access.Gate, error) {
	return access.New(access.Options{Store: st, Sender: sendVia{h}, Logger: logger.Named("access")})
}

// recordUsage is the agent layer's OnUsage: the gate accounts the turn.
func (h *Host) recordUsage(ctx context.Context, key string, u provider.Usage) {
	h.access.RecordTurn(ctx, key, u)
}

// applyAccess hands cfg's access blocks and agent limits to the gate. One
// agent block today: its limits are those of access.DefaultAgent.
func (h *Host) applyAccess(cfg *config.Config) {
	policies := make(map[string]access.Policy, len(cfg.Platforms))
	for _, p := range cfg.Platforms {
		policies[p.Name] = access.Policy{DM: access.DMPolicy(p.Access.DM), AllowedUsers: p.Access.AllowedUsers,
			AnswerEvery: config.AnswersEveryMessage(p.Plugin)}
	}
	h.access.Configure(policies, map[string]access.Limits{access.DefaultAgent: {
		MessagesPerMinute: cfg.Agent.Limits.MessagesPerMinute,
		TokensPerDay:      int64(cfg.Agent.Limits.TokensPerDay),
	}})
}

// withPluginAllowed makes each spec tell the gate the allowed_users of its
// plugin config block when the plugin starts: users an operator listed
// there are allowed already and skip pairing.
func (h *Host) withPluginAllowed(specs []supervisor.Spec) []supervisor.Spec {
	for i := range specs {
		name, decode := config.PlatformOfUnit(specs[i].Name), specs[i].Decode
		specs[i].Decode = func(schema []shared.Attribute) (json.RawMessage, error) {
			raw, err := decode(schema)
			if err == nil {
				var settings struct {
					AllowedUsers []string `json:"allowed_users"`
				}
				_ = json.Unmarshal(raw, &settings) // a plugin without that list allows none this way
				h.access.SetPluginAllowed(name, settings.AllowedUsers)
			}
			return raw, err
		}
	}
	return specs
}
