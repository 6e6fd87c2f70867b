package runner

import "github.com/prometheus/client_golang/prometheus"

// metrics are the runner's Prometheus series, labelled by consumer name.
type metrics struct {
	checkpoint     *prometheus.GaugeVec
	lagEvents      *prometheus.GaugeVec
	lagSeconds     *prometheus.GaugeVec
	active         *prometheus.GaugeVec
	batchDuration  *prometheus.HistogramVec
	errors         *prometheus.CounterVec
	applied        *prometheus.CounterVec
	horizonAge     prometheus.Gauge
	checkpointMove *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	l := []string{"consumer"}
	m := &metrics{
		checkpoint: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "consumer_checkpoint_global_position",
			Help: "Global position of the consumer's checkpoint (the log is ordered by transaction id first)."}, l),
		lagEvents: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "consumer_lag_events",
			Help: "Events visible in the log that the consumer has not handled yet (capped at 100000)."}, l),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "consumer_lag_seconds",
			Help: "Age of the oldest event the consumer has not handled yet; 0 when caught up."}, l),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "consumer_active",
			Help: "1 while this process holds the consumer's worker lock, 0 while it stands by."}, l),
		batchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "consumer_batch_duration_seconds",
			Help:    "Time to apply (or handle) one batch and advance the checkpoint.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, l),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consumer_errors_total",
			Help: "Batches that failed and will be retried."}, l),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consumer_events_applied_total",
			Help: "Events applied (projections) or handled (processors) and checkpointed."}, l),
		checkpointMove: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consumer_checkpoint_conflicts_total",
			Help: "Batches dropped because another worker or a rebuild had moved the checkpoint."}, l),
		horizonAge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "eventstore_horizon_age_seconds",
			Help: "Age of the oldest running transaction holding an xid: consumers cannot read past it."}),
	}
	reg.MustRegister(m.checkpoint, m.lagEvents, m.lagSeconds, m.active, m.batchDuration, m.errors, m.applied,
		m.checkpointMove, m.horizonAge)
	return m
}
