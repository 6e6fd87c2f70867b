// Package httpapi is the gateway's public HTTP surface (docs/openapi.yaml): routes, authentication and
// rate limiting, validation at the edge, idempotency for POSTs, and relaying the services' answers.
package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"upi/api-gateway/internal/auth"
	"upi/api-gateway/internal/downstream"
	"upi/api-gateway/internal/idempotency"
	"upi/api-gateway/internal/ratelimit"
	"upi/shared/contract"
	"upi/shared/observability"
)

// Default deadlines of downstream calls. A command takes milliseconds; five seconds is long enough for a
// loaded database and short enough that a client is never left hanging.
const (
	defaultCommandTimeout = 5 * time.Second
	defaultQueryTimeout   = 5 * time.Second
	// maxWait is the longest long-poll a client may ask for (?wait=).
	maxWait = 30 * time.Second
)

// Config is everything the router needs, wired in main.
type Config struct {
	Log         *slog.Logger
	Registry    *prometheus.Registry
	Checks      []observability.Check
	Auth        *auth.Authenticator
	Limiter     *ratelimit.Limiter
	Idempotency *idempotency.Store
	Downstream  *downstream.Client
	Commands    downstream.Service
	Queries     downstream.Service
	Limits      contract.Limits
	// QueryWaitMax is the query service's cap on min_position waits (QUERY_WAIT_MAX).
	QueryWaitMax time.Duration
	// CommandTimeout and QueryTimeout are the deadlines of a downstream call (defaults above); a read's
	// deadline grows by the waits it asks for.
	CommandTimeout, QueryTimeout time.Duration
}

type server struct {
	Config
	metrics *metrics
}

// NewRouter returns the gateway's router: the operations routes of every service, and the public /v1 API.
func NewRouter(cfg Config) chi.Router {
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = defaultCommandTimeout
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = defaultQueryTimeout
	}
	s := &server{Config: cfg, metrics: newMetrics(cfg.Registry)}
	r := observability.NewRouter(observability.RouterConfig{Log: cfg.Log, Registry: cfg.Registry, Checks: cfg.Checks})
	r.Route("/v1", func(r chi.Router) {
		r.Use(s.guard)
		r.Post("/accounts", s.openAccount)
		r.Get("/accounts/{vpa}", s.getAccount)
		r.Get("/accounts/{vpa}/balance", s.getAccount)
		r.Get("/accounts/{vpa}/transactions", s.listTransactions)
		r.Post("/accounts/{vpa}/deposits", s.deposit)
		r.Post("/payments", s.pay)
		r.Get("/payments", s.findPayments)
		r.Get("/vpas/{vpa}", s.lookupVPA)
		r.Get("/payments/{payment_id}", s.getPayment)
		r.Get("/payments/{payment_id}/events", s.getPaymentEvents)
	})
	return r
}

// relayedHeaders are the headers of a service's answer that reach the client. Everything else (the
// service's own X-Request-ID, hop-by-hop headers) stays behind.
var relayedHeaders = []string{
	"Content-Type",
	"Location",
	"Retry-After",
	"Cache-Control",
	contract.HeaderProjectionPosition,
	contract.HeaderProjectionStale,
	contract.HeaderIdempotentReplayed,
}

// relay writes a service's answer to the client unchanged.
func relay(w http.ResponseWriter, resp *downstream.Response) {
	h := w.Header()
	for _, name := range relayedHeaders {
		if v := resp.Header.Values(name); len(v) > 0 {
			h[name] = v
		}
	}
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

// forwardHeader is the header of a downstream call: only what the services need, and the client id the
// gateway authenticated, never one the client sent.
func forwardHeader(r *http.Request) http.Header {
	h := http.Header{}
	h.Set("Accept", "application/json")
	h.Set(observability.HeaderRequestID, observability.RequestID(r.Context()))
	h.Set(contract.HeaderClientID, clientID(r.Context()))
	return h
}
