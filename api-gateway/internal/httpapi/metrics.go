package httpapi

import "github.com/prometheus/client_golang/prometheus"

// metrics count the gateway's refusals (409, 422, 429), their labels resolved when the router is built;
// what happened in the application's flow is counted by app.
type metrics struct {
	inFlight prometheus.Counter
	reused   prometheus.Counter
	// forbidden counts valid keys used in the wrong role (a client's under /v1/ops/, an operator's
	// elsewhere).
	forbidden prometheus.Counter

	rateLimited *prometheus.CounterVec
	// rateLimitedClient holds the 429 counter of each configured client, rateLimitedUnauthenticated
	// that of requests limited per IP.
	rateLimitedClient          map[string]prometheus.Counter
	rateLimitedUnauthenticated prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, clients []string) *metrics {
	m := &metrics{
		inFlight: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_idempotency_in_flight_total", Help: "409 IDEMPOTENCY_KEY_IN_USE answers.",
		}),
		reused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_idempotency_reused_total", Help: "422 IDEMPOTENCY_KEY_REUSED answers.",
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_rate_limited_total", Help: "429 RATE_LIMITED answers, by client (\"unauthenticated\" for per-IP limits).",
		}, []string{"client"}),
		forbidden: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_forbidden_total", Help: "403 FORBIDDEN answers: a client's key on an operator route, or an operator's on a client route.",
		}),
		rateLimitedClient: map[string]prometheus.Counter{},
	}
	reg.MustRegister(m.inFlight, m.reused, m.rateLimited, m.forbidden)
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
