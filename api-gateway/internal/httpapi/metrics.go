package httpapi

import "github.com/prometheus/client_golang/prometheus"

// metrics are the gateway's own counters, their labels resolved when the router is built.
type metrics struct {
	replays           prometheus.Counter
	inFlight          prometheus.Counter
	reused            prometheus.Counter
	redisBypass       prometheus.Counter
	rateLimitFallback prometheus.Counter

	rateLimited *prometheus.CounterVec
	// rateLimitedClient holds the 429 counter of each configured client, rateLimitedUnauthenticated
	// that of requests limited per IP.
	rateLimitedClient          map[string]prometheus.Counter
	rateLimitedUnauthenticated prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, clients []string) *metrics {
	m := &metrics{
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_idempotent_replays_total", Help: "Stored responses replayed for a repeated idempotency key.",
		}),
		inFlight: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_idempotency_in_flight_total", Help: "409 IDEMPOTENCY_KEY_IN_USE answers.",
		}),
		reused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_idempotency_reused_total", Help: "422 IDEMPOTENCY_KEY_REUSED answers.",
		}),
		redisBypass: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_idempotency_redis_bypass_total",
			Help: "POSTs served without the Redis fast path because Redis did not answer (the command service still dedupes).",
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_rate_limited_total", Help: "429 RATE_LIMITED answers, by client (\"unauthenticated\" for per-IP limits).",
		}, []string{"client"}),
		rateLimitFallback: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_rate_limit_fallback_total", Help: "Rate-limit decisions made in process because Redis did not answer.",
		}),
		rateLimitedClient: map[string]prometheus.Counter{},
	}
	reg.MustRegister(m.replays, m.inFlight, m.reused, m.redisBypass, m.rateLimited, m.rateLimitFallback)
	for _, c := range clients {
		m.rateLimitedClient[c] = m.rateLimited.WithLabelValues(c)
	}
	m.rateLimitedUnauthenticated = m.rateLimited.WithLabelValues("unauthenticated")
	return m
}

// rateLimitedBy is the 429 counter of an authenticated client.
func (m *metrics) rateLimitedBy(client string) prometheus.Counter {
	if c, ok := m.rateLimitedClient[client]; ok {
		return c
	}
	return m.rateLimited.WithLabelValues(client)
}
