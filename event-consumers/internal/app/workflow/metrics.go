package workflow

import "github.com/prometheus/client_golang/prometheus"

// metrics are the workflow's Prometheus series.
type metrics struct {
	steps    *prometheus.CounterVec
	outcomes *prometheus.CounterVec
	parked   *prometheus.CounterVec
	open     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workflow_steps_total",
			Help: "Workflow steps, by step and result (ok, replayed, refused, transient_error, lasting_error)."},
			[]string{"step", "result"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workflow_payments_finished_total",
			Help: "Payments the workflow ended, by status and failure code."}, []string{"status", "code"}),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workflow_steps_parked_total",
			Help: "Steps parked after failing for a lasting reason, by step."}, []string{"step"}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "workflow_parked_open",
			Help: "Parked steps not yet resolved."}),
	}
	reg.MustRegister(m.steps, m.outcomes, m.parked, m.open)
	return m
}
