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
	jobActive      *prometheus.GaugeVec
	quarantined    *prometheus.CounterVec
	held           *prometheus.GaugeVec
	nameSync       *prometheus.HistogramVec
}

// byConsumer is the label of every per-consumer series.
var byConsumer = []string{"consumer"}

func consumerGauge(name, help string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, byConsumer)
}

func consumerCounter(name, help string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, byConsumer)
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		checkpoint: consumerGauge("consumer_checkpoint_global_position",
			"Global position of the consumer's checkpoint (the log is ordered by transaction id first)."),
		lagEvents: consumerGauge("consumer_lag_events",
			"Events visible in the log that the consumer has not handled yet (capped at 100000)."),
		lagSeconds: consumerGauge("consumer_lag_seconds",
			"Age of the oldest event the consumer has not handled yet; 0 when caught up."),
		active: consumerGauge("consumer_active",
			"1 while this process holds the consumer's worker lock, 0 while it stands by."),
		batchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "consumer_batch_duration_seconds",
			Help:    "Time to apply (or handle) one batch and advance the checkpoint.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, byConsumer),
		errors: consumerCounter("consumer_errors_total", "Batches that failed and will be retried."),
		applied: consumerCounter("consumer_events_applied_total",
			"Events applied (projections) or handled (processors) and checkpointed."),
		checkpointMove: consumerCounter("consumer_checkpoint_conflicts_total",
			"Batches dropped because another worker or a rebuild had moved the checkpoint."),
		jobActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "periodic_job_active",
			Help: "1 while this process holds a periodic job's lock and runs it, 0 while it stands by."}, []string{"job"}),
		quarantined: consumerCounter("consumer_events_quarantined_total",
			"Events the consumer could not decode or apply, set aside with their stream (quarantine)."),
		held: consumerGauge("consumer_quarantined_events",
			"Events the consumer holds in quarantine: the ones that failed and those of their streams behind them. Alert when above 0."),
		nameSync: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "consumer_name_sync_seconds",
			Help: "Time a partition's batch spends moving its consumer's row (NAME) to the partitions' minimum, " +
				"waiting for the other partitions' hold on that row included (with the partition's own " +
				"compare-and-set when a batch writes nothing else: they go in one message).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}, byConsumer),
		horizonAge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "eventstore_horizon_age_seconds",
			Help: "Age of the oldest running transaction holding an xid: consumers cannot read past it."}),
	}
	reg.MustRegister(m.checkpoint, m.lagEvents, m.lagSeconds, m.active, m.batchDuration, m.errors, m.applied,
		m.checkpointMove, m.horizonAge, m.jobActive, m.quarantined, m.held, m.nameSync)
	return m
}
