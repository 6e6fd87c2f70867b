package httpapi

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	replays           prometheus.Counter
	inFlight          prometheus.Counter
	reused            prometheus.Counter
	redisBypass       prometheus.Counter
	rateLimited       *prometheus.CounterVec
	rateLimitFallback prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
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
	}
	reg.MustRegister(m.replays, m.inFlight, m.reused, m.redisBypass, m.rateLimited, m.rateLimitFallback)
	return m
}
