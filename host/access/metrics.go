package access

import "github.com/prometheus/client_golang/prometheus"

// metrics are the gate's Prometheus metrics: labelled by platform and
// agent, never by user (a label per user would grow without bound).
type metrics struct {
	tokens  *prometheus.CounterVec
	turns   *prometheus.CounterVec
	refusal *prometheus.CounterVec
	codes   *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_tokens_total", Help: "Provider-reported tokens, by platform, agent and kind (prompt, completion).",
		}, []string{"platform", "agent", "kind"}),
		turns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_usage_turns_total", Help: "Turns whose usage was recorded, by platform and agent.",
		}, []string{"platform", "agent"}),
		refusal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_access_refused_total", Help: "Messages the access policy kept from the agent, by platform and reason (pairing, allowlist, rate, tokens, no_user).",
		}, []string{"platform", "reason"}),
		codes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_pairing_codes_total", Help: "Pairing codes sent, by platform.",
		}, []string{"platform"}),
	}
}

func (m *metrics) refused(platform, reason string) { m.refusal.WithLabelValues(platform, reason).Inc() }

// Collectors returns the gate's metrics, for the host's registry.
func (g *Gate) Collectors() []prometheus.Collector {
	return []prometheus.Collector{g.metrics.tokens, g.metrics.turns, g.metrics.refusal, g.metrics.codes}
}
