package app

import "github.com/prometheus/client_golang/prometheus"

// metrics count what happened in the gateway's flow; the answers it led to are counted by the HTTP layer.
type metrics struct {
	replays           prometheus.Counter
	redisBypass       prometheus.Counter
	rateLimitFallback prometheus.Counter
	shed              prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_idempotent_replays_total", Help: "Stored responses replayed for a repeated idempotency key.",
		}),
		redisBypass: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_idempotency_redis_bypass_total",
			Help: "POSTs served without the Redis fast path because Redis did not answer (the command service still dedupes).",
		}),
		rateLimitFallback: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_rate_limit_fallback_total", Help: "Rate-limit decisions made in process because Redis did not answer.",
		}),
	}
	m.shed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gateway_commands_shed_total",
		Help: "Commands answered 503 OVERLOADED at once because as many as the gateway admits were under way.",
	})
	reg.MustRegister(m.replays, m.redisBypass, m.rateLimitFallback, m.shed)
	return m
}
