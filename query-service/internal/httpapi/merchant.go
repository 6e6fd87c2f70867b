package httpapi

import (
	"errors"
	"net/http"
	"regexp"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"upi/query-service/internal/app"
	"upi/shared/contract"
	"upi/shared/contract/problem"
)

// merchantRoutes mounts the reads of QR codes and mandates.
func merchantRoutes(r chi.Router, h *Handler) {
	r.Get("/qr-codes/{id}", h.qr)
	r.Get("/accounts/{vpa}/qr", h.staticQR)
	r.Get("/mandates/{id}", h.mandate)
	r.Get("/mandates/{id}/events", h.mandateEvents)
}

// mandateRequest is the mandate named in the path and the consistency asked for.
func mandateRequest(w http.ResponseWriter, h *Handler, r *http.Request) (uuid.UUID, app.Consistency, bool) {
	c, errs := consistency(r)
	if len(errs) > 0 {
		problem.Write(w, problem.Validation(errs...))
		return uuid.Nil, c, false
	}
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		h.merchantFail(w, r, app.ErrMandateNotFound)
		return uuid.Nil, c, false
	}
	return id, c, true
}

func (h *Handler) mandate(w http.ResponseWriter, r *http.Request) {
	id, c, ok := mandateRequest(w, h, r)
	if !ok {
		return
	}
	m, f, err := h.q.Mandate(r.Context(), client(r), id, c)
	h.merchantRespond(w, r, f, m, err)
}

func (h *Handler) mandateEvents(w http.ResponseWriter, r *http.Request) {
	id, c, ok := mandateRequest(w, h, r)
	if !ok {
		return
	}
	page, f, err := h.q.MandateEvents(r.Context(), client(r), id, c)
	h.merchantRespond(w, r, f, page, err)
}

func (h *Handler) qr(w http.ResponseWriter, r *http.Request) {
	c, errs := consistency(r)
	if len(errs) > 0 {
		problem.Write(w, problem.Validation(errs...))
		return
	}
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		h.merchantFail(w, r, app.ErrQRNotFound)
		return
	}
	q, f, err := h.q.QR(r.Context(), client(r), id, c)
	h.merchantRespond(w, r, f, q, err)
}

func (h *Handler) staticQR(w http.ResponseWriter, r *http.Request) {
	v, c, p := accountRequest(r)
	if p != nil {
		problem.Write(w, p)
		return
	}
	q, f, err := h.q.StaticQR(r.Context(), client(r), v, c)
	h.merchantRespond(w, r, f, q, err)
}

var merchantRef = regexp.MustCompile(`^[A-Za-z0-9._\-]{1,35}$`)

// paymentsByReference serves GET /v1/payments?merchant_reference=.
func (h *Handler) paymentsByReference(w http.ResponseWriter, r *http.Request) {
	c, errs := consistency(r)
	ref := r.URL.Query().Get("merchant_reference")
	if !merchantRef.MatchString(ref) {
		errs = append(errs, problem.FieldError{Field: "merchant_reference", Message: "merchant_reference must be 1 to 35 letters, digits, '.', '-' or '_'"})
	}
	if len(errs) > 0 {
		problem.Write(w, problem.Validation(errs...))
		return
	}
	items, f, err := h.q.PaymentsByReference(r.Context(), client(r), ref, c)
	h.respond(w, r, f, contract.PaymentList{Items: items}, err)
}

func (h *Handler) merchantRespond(w http.ResponseWriter, r *http.Request, f app.Freshness, body any, err error) {
	if err != nil && h.merchantFail(w, r, err) {
		return
	}
	h.respond(w, r, f, body, err)
}

// merchantFail answers the merchant reads' own refusals; it reports false for any other error.
func (h *Handler) merchantFail(w http.ResponseWriter, _ *http.Request, err error) bool {
	switch {
	case errors.Is(err, app.ErrQRNotFound):
		problem.Write(w, problem.New(http.StatusNotFound, problem.CodeQRNotFound, "no such QR code"))
	case errors.Is(err, app.ErrQRNotAllowed):
		problem.Write(w, problem.New(http.StatusUnprocessableEntity, problem.CodeQRNotAllowed, "only an ENTITY account has a QR code"))
	case errors.Is(err, app.ErrMandateNotFound):
		problem.Write(w, problem.New(http.StatusNotFound, problem.CodeMandateNotFound, "no such mandate"))
	default:
		return false
	}
	return true
}
