// Package httpapi is the gateway's public HTTP surface (docs/openapi.yaml): routes, authentication,
// validation at the edge, and writing what the application (internal/app) decided: the RateLimit headers,
// the services' answers relayed, stored answers replayed, and errors as problem+json.
package httpapi

import (
	"log/slog"
	"net/http"
	"net/textproto"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"upi/api-gateway/internal/app"
	"upi/api-gateway/internal/auth"
	"upi/shared/contract"
	"upi/shared/platform/observability"
)

// Config is everything the router needs, wired in main.
type Config struct {
	Log      *slog.Logger
	Registry *prometheus.Registry
	Checks   []observability.Check
	Auth     *auth.Authenticator
	App      *app.Gateway
	Limits   contract.Limits
}

type server struct {
	Config
	metrics *metrics
}

// NewRouter returns the gateway's router: the operations routes of every service, and the public /v1 API.
func NewRouter(cfg Config) chi.Router {
	s := &server{Config: cfg, metrics: newMetrics(cfg.Registry, cfg.Auth.Clients())}
	r := observability.NewRouter(observability.RouterConfig{Log: cfg.Log, Registry: cfg.Registry, Checks: cfg.Checks})
	v1 := chi.NewRouter()
	v1.Use(s.authenticate)
	// Commands check the client's rate limit in the Redis round trip that claims their idempotency key
	// (command); every other request checks it alone (limit).
	v1.Post("/accounts", s.command(s.openAccount()))
	v1.Post("/accounts/{vpa}/deposits", s.command(s.deposit()))
	v1.Post("/accounts/{vpa}/withdrawals", s.command(s.withdraw()))
	v1.Post("/payments", s.command(s.pay()))
	v1.Post("/payments/{payment_id}/refunds", s.command(s.refund()))
	v1.Post("/collect-requests", s.command(s.requestCollect()))
	v1.Post("/collect-requests/{collect_id}/approve", s.command(answerCollect()))
	v1.Post("/collect-requests/{collect_id}/decline", s.command(answerCollect()))
	// Operators only, like every route under /v1/ops/ (erasure.go).
	v1.Post("/ops/erasures", s.command(erasure()))
	// QR codes and mandates (merchant.go).
	s.merchantCommands(v1)
	v1.Post("/payments/{payment_id}/complaints", s.command(s.complain()))
	v1.Post("/complaints/{complaint_id}/accept", s.command(acceptComplaint()))
	v1.Post("/complaints/{complaint_id}/reject", s.command(rejectComplaint()))
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
		r.Get("/withdrawals/{withdrawal_id}", s.getWithdrawal)
		r.Get("/collect-requests/{collect_id}", s.getCollect)
		r.Get("/accounts/{vpa}/collect-requests", s.listCollects)
		s.merchantReads(r)
		// Operators only (the guard refuses a client's key under /v1/ops/).
		r.Get("/ops/ledger-check", s.ledgerCheck)
		r.Get("/ops/settlement-accounts", s.settlementAccounts)
		// Settlement cycles and reconciliation (settlement.go).
		r.Get("/ops/settlement/cycles", s.settlementRead)
		r.Get("/ops/settlement/cycles/{cycle}", s.settlementRead)
		r.Get("/ops/settlement/cycles/{cycle}/banks/{bank}/file", s.settlementFile)
		r.Post("/ops/settlement/cycles/{cycle}/banks/{bank}/reconciliation", s.reconcile)
		// Complaints (complaints.go).
		r.Get("/complaints/{complaint_id}", s.getComplaint)
		r.Get("/ops/complaints", s.complaintQueue)
	})
	// Webhook endpoints (docs/webhooks.md).
	s.webhookRoutes(v1)
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
func relay(w http.ResponseWriter, resp *app.Response) {
	h := w.Header()
	for _, name := range relayedHeaders {
		if v := resp.Header[name]; len(v) > 0 {
			h[name] = v
		}
	}
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

// replay writes the answer stored for an earlier request with the same idempotency key.
func replay(w http.ResponseWriter, resp *app.StoredResponse) {
	h := w.Header()
	for name, v := range resp.Header {
		h.Set(name, v)
	}
	h.Set(contract.HeaderIdempotentReplayed, "true")
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}
