// Package httpapi is the command service's HTTP edge: it decodes and validates a request with the shared
// contract, calls one command of internal/app, and encodes the answer. Errors become problem+json in one
// place (errors.go).
package httpapi

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"upi/command-service/internal/app"
	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
)

// Config is what the routes need.
type Config struct {
	Service  *app.Service
	Limits   contract.Limits
	Log      *slog.Logger
	Registry prometheus.Registerer
}

// Register mounts the client commands and the workflow steps on r (a router from
// observability.NewRouter, which already serves health, metrics, 404 and 405).
func Register(r chi.Router, cfg Config) {
	h := &handlers{svc: cfg.Service, limits: cfg.Limits, log: cfg.Log}
	m := newMetrics(cfg.Registry)
	r.Group(func(r chi.Router) {
		r.Use(h.requireClient)
		r.With(m.instrument("open_account")).Post(app.PathAccounts, h.openAccount())
		r.With(m.instrument("deposit")).Post(app.PathAccounts+"/{vpa}/deposits", h.deposit())
		r.With(m.instrument("withdraw")).Post(app.PathAccounts+"/{vpa}/withdrawals", h.withdraw())
		r.With(m.instrument("initiate_payment")).Post(app.PathPayments, h.initiatePayment())
		r.With(m.instrument("request_refund")).Post(app.PathPayments+"/{payment_id}/refunds", h.requestRefund())
		r.With(m.instrument("request_collect")).Post(app.PathCollects, h.requestCollect())
		r.With(m.instrument("approve_collect")).Post(app.PathCollects+"/{collect_id}/approve", h.answerCollect(true))
		r.With(m.instrument("decline_collect")).Post(app.PathCollects+"/{collect_id}/decline", h.answerCollect(false))
		// QR codes and mandates (merchant.go).
		registerMerchant(r, h, m)
		r.With(m.instrument("steps")).Post(contract.PathSteps, h.steps)
		r.With(m.instrument("collect_expiries")).Post(contract.PathCollectExpiries, h.collectExpiries)
		// Complaints (complaints.go).
		r.With(m.instrument("raise_complaint")).Post(app.PathPayments+"/{payment_id}/complaints", h.raiseComplaint())
		r.With(m.instrument("complaint_resolutions")).Post(contract.PathComplaintResolutions, h.complaintResolutions)
		r.With(m.instrument("accept_complaint")).Post(app.PathComplaints+"/{complaint_id}/accept", h.acceptComplaint())
		r.With(m.instrument("reject_complaint")).Post(app.PathComplaints+"/{complaint_id}/reject", h.rejectComplaint())
		r.With(m.instrument("complaint_chargebacks")).Post(contract.PathComplaintChargebacks, h.complaintChargebacks)
		r.With(m.instrument("complaint_refund_retries")).Post(contract.PathComplaintRefundRetries, h.complaintRefundRetries)
	})
	// Operators' commands (erasure.go): no client.
	registerErasures(r, h, m)
	// The gateway's batches of client commands (batch.go).
	registerBatch(r, cfg.Log, cfg.Registry)
}

// metrics count commands by outcome and time them.
type metrics struct {
	commands *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commands_total",
			Help: "Commands handled, by command and outcome (ok, replayed, rejected, unavailable, error).",
		}, []string{"command", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "command_duration_seconds",
			Help:    "Time to handle a command, by command.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"command"}),
	}
	reg.MustRegister(m.commands, m.duration)
	return m
}

func (m metrics) instrument(command string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			m.duration.WithLabelValues(command).Observe(time.Since(start).Seconds())
			m.commands.WithLabelValues(command, outcome(ww.Status(), ww.Header())).Inc()
		})
	}
}

func outcome(status int, h http.Header) string {
	switch {
	case status == http.StatusServiceUnavailable:
		return "unavailable"
	case status >= 500 || status == 0:
		return "error"
	case status >= 400:
		return "rejected"
	case h.Get(contract.HeaderIdempotentReplayed) == "true":
		return "replayed"
	default:
		return "ok"
	}
}

// maxClientIDLen bounds X-Client-ID; the gateway sets it from its configured client ids.
const maxClientIDLen = 128

// requireClient refuses requests that do not name their client: only the gateway (and the workflow)
// reach this service, and they always do.
func (h *handlers) requireClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(contract.HeaderClientID)
		if !printable(id, maxClientIDLen) {
			h.fail(w, r, problem.New(http.StatusUnauthorized, problem.CodeUnauthenticated,
				contract.HeaderClientID+" must name the authenticated client"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// printable reports whether s is 1 to max printable ASCII characters without spaces.
func printable(s string, max int) bool {
	if len(s) < 1 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// writeAnswer sends a command's answer; a repeat of an earlier request says so in a header (its body is the
// earlier one, byte for byte).
func writeAnswer(w http.ResponseWriter, status int, body any, replayed bool) {
	if replayed {
		w.Header().Set(contract.HeaderIdempotentReplayed, strconv.FormatBool(true))
	}
	w.Header().Set("Cache-Control", "no-store")
	httpjson.Write(w, status, body)
}
