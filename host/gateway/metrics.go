package gateway

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/plughost/gateway/host/supervisor"
)

// metrics are the host's Prometheus metrics. Cache and provider metrics
// come from the agent layer's collectors.
type metrics struct {
	messagesIn   *prometheus.CounterVec
	repliesOut   *prometheus.CounterVec
	replySeconds *prometheus.HistogramVec
	reloads      *prometheus.CounterVec
	transitions  *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry, h *Host) *metrics {
	m := &metrics{
		messagesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_messages_in_total", Help: "Inbound messages, by platform.",
		}, []string{"platform"}),
		repliesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_replies_total", Help: "Agent turns finished, by platform and result.",
		}, []string{"platform", "result"}),
		replySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gateway_reply_seconds", Help: "Time from a message's turn starting to its reply.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"platform"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_reloads_total", Help: "Configuration reloads, by result.",
		}, []string{"result"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_platform_transitions_total", Help: "Platform state changes, by platform and new state.",
		}, []string{"platform", "state"}),
	}
	states := prometheus.NewDesc("gateway_platform_state", "1 for each platform's current state.", []string{"platform", "state"}, nil)
	restarts := prometheus.NewDesc("gateway_platform_restarts", "Plugin restarts, by platform.", []string{"platform"}, nil)
	reg.MustRegister(m.messagesIn, m.repliesOut, m.replySeconds, m.reloads, m.transitions,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectorFunc{descs: []*prometheus.Desc{states, restarts}, collect: func(ch chan<- prometheus.Metric) {
			if h.sup == nil {
				return
			}
			for _, st := range h.sup.Statuses() {
				ch <- prometheus.MustNewConstMetric(states, prometheus.GaugeValue, 1, st.Name, string(st.State))
				ch <- prometheus.MustNewConstMetric(restarts, prometheus.CounterValue, float64(st.Restarts), st.Name)
			}
		}})
	return m
}

func (m *metrics) messageIn(platform string) { m.messagesIn.WithLabelValues(platform).Inc() }

func (m *metrics) observeReply(platform string, took time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	// The histogram first: whoever sees the reply counted sees its time.
	m.replySeconds.WithLabelValues(platform).Observe(took.Seconds())
	m.repliesOut.WithLabelValues(platform, result).Inc()
}

func (m *metrics) stateChanged(st supervisor.Status) {
	m.transitions.WithLabelValues(st.Name, string(st.State)).Inc()
}

// collectorFunc is a prometheus.Collector made of a function, for metrics
// read from state the host already keeps.
type collectorFunc struct {
	descs   []*prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }
