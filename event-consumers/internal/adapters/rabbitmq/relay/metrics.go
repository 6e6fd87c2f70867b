package relay

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the relay's own series. Its lag (events and seconds behind the log) is the runner's
// consumer_lag_events and consumer_lag_seconds with consumer="event-feed".
type Metrics struct {
	published       prometheus.Counter
	confirmed       prometheus.Counter
	republished     prometheus.Counter
	nacked          prometheus.Counter
	connected       prometheus.Gauge
	commitToConfirm prometheus.Histogram
}

// NewMetrics registers the relay's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "event_feed_published_total",
			Help: "Messages the relay published (first publications and repeats)."}),
		confirmed: prometheus.NewCounter(prometheus.CounterOpts{Name: "event_feed_confirmed_total",
			Help: "Messages the broker confirmed."}),
		republished: prometheus.NewCounter(prometheus.CounterOpts{Name: "event_feed_republished_total",
			Help: "Messages published again by this process after a failed batch (a repeat after a restart of " +
				"the process is not counted: it cannot know)."}),
		nacked: prometheus.NewCounter(prometheus.CounterOpts{Name: "event_feed_unconfirmed_total",
			Help: "Messages the broker nacked or whose connection was lost before the confirm."}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "event_feed_connected",
			Help: "1 while the relay holds a connection to RabbitMQ."}),
		commitToConfirm: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "event_feed_commit_to_confirm_seconds",
			Help:    "From an event's append (created_at) to the broker's confirm of its message.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}),
	}
	reg.MustRegister(m.published, m.confirmed, m.republished, m.nacked, m.connected, m.commitToConfirm)
	return m
}
