// Package httpapi is the gateway's public HTTP surface (docs/openapi.yaml): routes, authentication and
// rate limiting, validation at the edge, idempotency for POSTs, and relaying the services' answers.
package httpapi

import (
	"log/slog"
	"net/http"
	"net/textproto"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"upi/api-gateway/internal/auth"
	"upi/api-gateway/internal/downstream"
	"upi/api-gateway/internal/idempotency"
	"upi/api-gateway/internal/ratelimit"
	"upi/shared/contract"
	"upi/shared/platform/observability"
)

// Default deadlines of downstream calls. A command takes milliseconds; five seconds is long enough for a
// loaded database and short enough that a client is never left hanging.
const (
	defaultCommandTimeout = 5 * time.Second
	defaultQueryTimeout   = 5 * time.Second
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
	// commands and queries are the downstream endpoints, their metrics resolved once.
	commands, queries *downstream.Endpoint
}

// NewRouter returns the gateway's router: the operations routes of every service, and the public /v1 API.
func NewRouter(cfg Config) chi.Router {
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = defaultCommandTimeout
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = defaultQueryTimeout
	}
	s := &server{
		Config:   cfg,
		metrics:  newMetrics(cfg.Registry, cfg.Auth.Clients()),
		commands: cfg.Downstream.Endpoint(cfg.Commands, http.MethodPost),
		queries:  cfg.Downstream.Endpoint(cfg.Queries, http.MethodGet),
	}
	r := observability.NewRouter(observability.RouterConfig{Log: cfg.Log, Registry: cfg.Registry, Checks: cfg.Checks})
	v1 := chi.NewRouter()
	v1.Use(s.authenticate)
	// Commands check the client's rate limit in the Redis round trip that claims their idempotency key
	// (command); every other request checks it alone (limit).
	v1.Post("/accounts", s.openAccount)
	v1.Post("/accounts/{vpa}/deposits", s.deposit)
	v1.Post("/payments", s.pay)
	v1.Post("/payments/{payment_id}/refunds", s.refund)
	v1.Post("/collect-requests", s.requestCollect)
	v1.Post("/collect-requests/{collect_id}/approve", s.answerCollect)
	v1.Post("/collect-requests/{collect_id}/decline", s.answerCollect)
	v1.Group(func(r chi.Router) {
		r.Use(s.limit)
		r.Get("/accounts/{vpa}", s.getAccount)
		r.Get("/accounts/{vpa}/balance", s.getAccount)
		r.Get("/accounts/{vpa}/transactions", s.listTransactions)
		r.Get("/payments", s.findPayments)
		r.Get("/vpas/{vpa}", s.lookupVPA)
		r.Get("/payments/{payment_id}", s.getPayment)
		r.Get("/payments/{payment_id}/events", s.getPaymentEvents)
		r.Get("/refunds/{refund_id}", s.getRefund)
		r.Get("/collect-requests/{collect_id}", s.getCollect)
		r.Get("/accounts/{vpa}/collect-requests", s.listCollects)
	})
	r.Mount("/v1", v1)
	// Mounting gave v1 the router's problem+json 404 and 405; under /v1 they count against the client's
	// rate limit like any other request.
	v1.NotFound(s.limit(v1.NotFoundHandler()).ServeHTTP)
	v1.MethodNotAllowed(s.limit(v1.MethodNotAllowedHandler()).ServeHTTP)
	return r
}

// relayedHeaders are the headers of a service's answer that reach the client, in canonical form (as a
// received header's names are). Everything else (the service's own X-Request-ID, hop-by-hop headers)
// stays behind.
var relayedHeaders = canonical(
	"Content-Type",
	"Location",
	"Retry-After",
	"Cache-Control",
	contract.HeaderProjectionPosition,
	contract.HeaderProjectionStale,
	contract.HeaderIdempotentReplayed,
)

func canonical(names ...string) []string {
	for i, n := range names {
		names[i] = textproto.CanonicalMIMEHeaderKey(n)
	}
	return names
}

// relay writes a service's answer to the client unchanged.
func relay(w http.ResponseWriter, resp *downstream.Response) {
	h := w.Header()
	for _, name := range relayedHeaders {
		if v := resp.Header[name]; len(v) > 0 {
			h[name] = v
		}
	}
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

// forwardHeader is the header of a downstream call: only what the services need, and the client id the
// gateway authenticated, never one the client sent. Room is left for the headers a command adds.
func forwardHeader(r *http.Request) http.Header {
	h := make(http.Header, 5)
	h[headerAccept] = []string{"application/json"}
	h[headerRequestID] = []string{observability.RequestID(r.Context())}
	h[headerClientID] = []string{clientID(r.Context())}
	return h
}

// Header names in canonical form, so setting them skips canonicalising them on every request.
var (
	headerAccept         = textproto.CanonicalMIMEHeaderKey("Accept")
	headerContentType    = textproto.CanonicalMIMEHeaderKey("Content-Type")
	headerRequestID      = textproto.CanonicalMIMEHeaderKey(observability.HeaderRequestID)
	headerClientID       = textproto.CanonicalMIMEHeaderKey(contract.HeaderClientID)
	headerIdempotencyKey = textproto.CanonicalMIMEHeaderKey(contract.HeaderIdempotencyKey)
)
