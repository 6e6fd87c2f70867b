package httpapi

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"upi/command-service/internal/app"
	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
)

// WebhooksConfig is what the webhook endpoints' routes need.
type WebhooksConfig struct {
	Webhooks *app.Webhooks
	Log      *slog.Logger
	Registry prometheus.Registerer
}

// RegisterWebhooks mounts the webhook endpoints' commands (docs/webhooks.md) on r.
func RegisterWebhooks(r chi.Router, cfg WebhooksConfig) {
	h := &handlers{log: cfg.Log}
	wh := &webhookHandlers{handlers: h, w: cfg.Webhooks}
	m := newWebhookMetrics(cfg.Registry)
	const one = contract.PathWebhookEndpoints + "/{endpoint_id}"
	r.Group(func(r chi.Router) {
		r.Use(h.requireClient)
		r.With(m.instrument("webhook_create")).Post(contract.PathWebhookEndpoints, wh.create)
		r.With(m.instrument("webhook_disable")).Post(one+"/disable", wh.setStatus(contract.WebhookDisabled))
		r.With(m.instrument("webhook_enable")).Post(one+"/enable", wh.setStatus(contract.WebhookEnabled))
		r.With(m.instrument("webhook_delete")).Post(one+"/delete", wh.delete)
		r.With(m.instrument("webhook_rotate")).Post(one+"/rotate-secret", wh.rotate)
		r.With(m.instrument("webhook_redeliver")).Post(one+"/redeliveries", wh.redeliver)
	})
}

func newWebhookMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_commands_total",
			Help: "Webhook endpoint commands handled, by command and outcome.",
		}, []string{"command", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "webhook_command_duration_seconds",
			Help:    "Time to handle a webhook endpoint command, by command.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"command"}),
	}
	reg.MustRegister(m.commands, m.duration)
	return m
}

type webhookHandlers struct {
	*handlers
	w *app.Webhooks
}

// failWebhook answers err; an endpoint that is not the caller's is 404, like one that does not exist.
func (h *webhookHandlers) failWebhook(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, app.ErrWebhookEndpointNotFound) {
		problem.Write(w, problem.New(http.StatusNotFound, problem.CodeWebhookEndpointNotFound, "no such webhook endpoint"))
		return
	}
	h.fail(w, r, err)
}

// endpoint is the caller and the endpoint id of the path; a malformed id is an endpoint not found.
func (h *webhookHandlers) endpoint(w http.ResponseWriter, r *http.Request) (app.Caller, uuid.UUID, bool) {
	c, p := caller(r)
	if p != nil {
		h.fail(w, r, p)
		return c, uuid.Nil, false
	}
	id, err := uuid.Parse(chi.URLParam(r, "endpoint_id"))
	if err != nil {
		h.failWebhook(w, r, app.ErrWebhookEndpointNotFound)
		return c, uuid.Nil, false
	}
	return c, id, true
}

// decodeOptional decodes an optional body into dst: none (or an empty body) leaves it as it is.
func decodeOptional(w http.ResponseWriter, r *http.Request, dst any) *problem.Problem {
	if r.ContentLength == 0 {
		return nil
	}
	return httpjson.Decode(w, r, dst)
}

func (h *webhookHandlers) create(w http.ResponseWriter, r *http.Request) {
	c, p := caller(r)
	if p != nil {
		h.fail(w, r, p)
		return
	}
	var req contract.WebhookEndpointRequest
	if p := httpjson.Decode(w, r, &req); p != nil {
		h.fail(w, r, p)
		return
	}
	if p := req.Validate(h.w.AllowHTTP()); p != nil {
		h.fail(w, r, p)
		return
	}
	out, err := h.w.Create(r.Context(), c, req)
	if err != nil {
		h.failWebhook(w, r, err)
		return
	}
	w.Header().Set("Location", contract.PathWebhookEndpoints+"/"+out.EndpointID)
	writeAnswer(w, http.StatusCreated, out, false)
}

func (h *webhookHandlers) setStatus(status string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, id, ok := h.endpoint(w, r)
		if !ok {
			return
		}
		var none struct{}
		if p := decodeOptional(w, r, &none); p != nil {
			h.fail(w, r, p)
			return
		}
		out, err := h.w.SetStatus(r.Context(), c, id, status)
		if err != nil {
			h.failWebhook(w, r, err)
			return
		}
		writeAnswer(w, http.StatusOK, out, false)
	}
}

func (h *webhookHandlers) delete(w http.ResponseWriter, r *http.Request) {
	c, id, ok := h.endpoint(w, r)
	if !ok {
		return
	}
	if err := h.w.Delete(r.Context(), c, id); err != nil {
		h.failWebhook(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func (h *webhookHandlers) rotate(w http.ResponseWriter, r *http.Request) {
	c, id, ok := h.endpoint(w, r)
	if !ok {
		return
	}
	var req contract.RotateSecretRequest
	if p := decodeOptional(w, r, &req); p != nil {
		h.fail(w, r, p)
		return
	}
	overlap, p := req.Overlap()
	if p != nil {
		h.fail(w, r, p)
		return
	}
	out, err := h.w.RotateSecret(r.Context(), c, id, r.URL.Path, overlap)
	if err != nil {
		h.failWebhook(w, r, err)
		return
	}
	writeAnswer(w, http.StatusOK, out, false)
}

func (h *webhookHandlers) redeliver(w http.ResponseWriter, r *http.Request) {
	c, id, ok := h.endpoint(w, r)
	if !ok {
		return
	}
	var req contract.RedeliveryRequest
	if p := httpjson.Decode(w, r, &req); p != nil {
		h.fail(w, r, p)
		return
	}
	red, p := req.Validate()
	if p != nil {
		h.fail(w, r, p)
		return
	}
	out, err := h.w.Redeliver(r.Context(), c, id, red)
	if err != nil {
		h.failWebhook(w, r, err)
		return
	}
	writeAnswer(w, http.StatusAccepted, out, false)
}
