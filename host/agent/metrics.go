package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collectors returns the agent layer's Prometheus collectors, for the host to
// register: cache size and limit, evictions and closes by reason, provider
// errors by provider and kind, and group commit counters. Values are read
// from the live counters at scrape time, so /metrics and /v1/status agree.
func (s *Service) Collectors() []prometheus.Collector {
	return []prometheus.Collector{&collector{s: s}}
}

var (
	descAgents = prometheus.NewDesc("gateway_agent_cache_agents",
		"Agents in the cache.", nil, nil)
	descMaxAgents = prometheus.NewDesc("gateway_agent_cache_max_agents",
		"The cache's max_agents.", nil, nil)
	descClosing = prometheus.NewDesc("gateway_agent_cache_closing",
		"Evicted agents not yet closed (waiting for their reply).", nil, nil)
	descEvictions = prometheus.NewDesc("gateway_agent_evictions_total",
		"Agents evicted from the cache, by reason.", []string{"reason"}, nil)
	descCloses = prometheus.NewDesc("gateway_agent_closes_total",
		"Evicted agents closed, by eviction reason.", []string{"reason"}, nil)
	descProviderErrors = prometheus.NewDesc("gateway_provider_errors_total",
		"Failed provider requests, by provider and kind.", []string{"provider", "kind"}, nil)
	descConnWaiting = prometheus.NewDesc("gateway_provider_conn_waiting",
		"Provider requests waiting now for one of max_connections, by provider.", []string{"provider"}, nil)
	descConnWaits = prometheus.NewDesc("gateway_provider_conn_waits_total",
		"Provider requests that got a pooled connection, by provider.", []string{"provider"}, nil)
	descConnWaitSeconds = prometheus.NewDesc("gateway_provider_conn_wait_seconds_total",
		"Time provider requests spent waiting for a pooled connection (not counted in timeout), by provider.", []string{"provider"}, nil)
	descStoreWrites = prometheus.NewDesc("gateway_store_writes_total",
		"Session store writes committed.", nil, nil)
	descStoreCommits = prometheus.NewDesc("gateway_store_commits_total",
		"Session store transactions (fsyncs); writes/commits is the group commit factor.", nil, nil)
)

type collector struct{ s *Service }

var _ prometheus.Collector = (*collector)(nil)

// Describe sends the metric descriptions.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAgents, descMaxAgents, descClosing, descEvictions,
		descCloses, descProviderErrors, descConnWaiting, descConnWaits, descConnWaitSeconds,
		descStoreWrites, descStoreCommits} {
		ch <- d
	}
}

// Collect sends the current values.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	ch <- prometheus.MustNewConstMetric(descAgents, prometheus.GaugeValue, float64(st.Agents))
	ch <- prometheus.MustNewConstMetric(descMaxAgents, prometheus.GaugeValue, float64(st.MaxAgents))
	ch <- prometheus.MustNewConstMetric(descClosing, prometheus.GaugeValue, float64(st.Closing))
	for _, r := range Reasons {
		ch <- prometheus.MustNewConstMetric(descEvictions, prometheus.CounterValue, float64(st.EvictionsByReason[r]), string(r))
		ch <- prometheus.MustNewConstMetric(descCloses, prometheus.CounterValue, float64(st.ClosedByReason[r]), string(r))
	}
	for k, n := range c.s.errs.snapshot() {
		ch <- prometheus.MustNewConstMetric(descProviderErrors, prometheus.CounterValue, float64(n), k.provider, string(k.kind))
	}
	for name, ps := range c.s.PoolStats() {
		ch <- prometheus.MustNewConstMetric(descConnWaiting, prometheus.GaugeValue, float64(ps.Waiting), name)
		ch <- prometheus.MustNewConstMetric(descConnWaits, prometheus.CounterValue, float64(ps.Waits), name)
		ch <- prometheus.MustNewConstMetric(descConnWaitSeconds, prometheus.CounterValue, ps.WaitSeconds, name)
	}
	cs := c.s.store.Stats()
	ch <- prometheus.MustNewConstMetric(descStoreWrites, prometheus.CounterValue, float64(cs.Writes))
	ch <- prometheus.MustNewConstMetric(descStoreCommits, prometheus.CounterValue, float64(cs.Commits))
}
