package httpapi

import (
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"upi/query-service/internal/app"
	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
)

// WebhookRoutes mounts the reads of a client's webhook endpoints and deliveries (docs/webhooks.md) on r,
// beside Routes.
func WebhookRoutes(r chi.Router, w *app.Webhooks, log *slog.Logger) {
	h := &webhookHandler{w: w, Handler: &Handler{log: log}}
	r.With(requireClient).Get(contract.PathWebhookEndpoints, h.list)
	r.With(requireClient).Get(contract.PathWebhookEndpoints+"/{id}", h.one)
	r.With(requireClient).Get(contract.PathWebhookEndpoints+"/{id}/deliveries", h.deliveries)
}

type webhookHandler struct {
	*Handler
	w *app.Webhooks
}

func (h *webhookHandler) answer(w http.ResponseWriter, r *http.Request, body any, err error) {
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case errors.Is(err, app.ErrWebhookEndpointNotFound):
		problem.Write(w, problem.New(http.StatusNotFound, problem.CodeWebhookEndpointNotFound, "no such webhook endpoint"))
	case err != nil:
		h.fail(w, r, err)
	default:
		httpjson.Write(w, http.StatusOK, body)
	}
}

// webhookPage reads ?limit= (default 50) and ?cursor= (opaque; the gateway checked their form).
func webhookPage(r *http.Request) (limit int, cursor string, p *problem.Problem) {
	q := r.URL.Query()
	limit = 50
	if q.Has("limit") {
		n, ok := contract.ParsePageLimit(q.Get("limit"))
		if !ok {
			return 0, "", problem.Validation(problem.FieldError{Field: "limit", Message: "limit must be a whole number from 1 to 200"})
		}
		limit = n
	}
	if c := q.Get("cursor"); c != "" {
		raw, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil {
			return 0, "", badCursor()
		}
		cursor = string(raw)
	}
	return limit, cursor, nil
}

func badCursor() *problem.Problem {
	return problem.Validation(problem.FieldError{Field: "cursor", Message: "cursor must be the next_cursor of an earlier page"})
}

func encodeCursor(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func (h *webhookHandler) list(w http.ResponseWriter, r *http.Request) {
	limit, cursor, p := webhookPage(r)
	if p != nil {
		problem.Write(w, p)
		return
	}
	var after *app.EndpointCursor
	if cursor != "" {
		at, id, ok := strings.Cut(cursor, " ")
		nanos, err1 := strconv.ParseInt(at, 10, 64)
		uid, err2 := uuid.Parse(id)
		if !ok || err1 != nil || err2 != nil {
			problem.Write(w, badCursor())
			return
		}
		after = &app.EndpointCursor{CreatedAt: time.Unix(0, nanos), ID: uid}
	}
	items, next, err := h.w.Endpoints(r.Context(), client(r), after, limit)
	out := contract.WebhookEndpointPage{Items: items}
	if next != nil {
		out.NextCursor = encodeCursor(strconv.FormatInt(next.CreatedAt.UnixNano(), 10) + " " + next.ID.String())
	}
	h.answer(w, r, out, err)
}

func (h *webhookHandler) one(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		h.answer(w, r, nil, app.ErrWebhookEndpointNotFound)
		return
	}
	e, err := h.w.Endpoint(r.Context(), client(r), id)
	h.answer(w, r, e, err)
}

func (h *webhookHandler) deliveries(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		h.answer(w, r, nil, app.ErrWebhookEndpointNotFound)
		return
	}
	limit, cursor, p := webhookPage(r)
	if p != nil {
		problem.Write(w, p)
		return
	}
	var before int64
	if cursor != "" {
		if before, err = strconv.ParseInt(cursor, 10, 64); err != nil || before <= 0 {
			problem.Write(w, badCursor())
			return
		}
	}
	items, next, err := h.w.Deliveries(r.Context(), client(r), id, before, limit)
	out := contract.WebhookDeliveryPage{Items: items}
	if next > 0 {
		out.NextCursor = encodeCursor(strconv.FormatInt(next, 10))
	}
	h.answer(w, r, out, err)
}
