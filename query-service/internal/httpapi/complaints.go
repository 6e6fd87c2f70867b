package httpapi

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"upi/query-service/internal/app/complaints"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
)

type complaintHandler struct {
	q   *complaints.Queries
	log *slog.Logger
}

// ComplaintRoutes returns the mount of the complaint reads: a client's own complaint under /v1, the
// operators' queue under /ops.
func ComplaintRoutes(q *complaints.Queries, log *slog.Logger) Mount {
	h := &complaintHandler{q: q, log: log}
	return Mount{
		V1:  func(r chi.Router) { r.Get("/complaints/{id}", h.complaint) },
		Ops: func(r chi.Router) { r.Get("/complaints", h.queue) },
	}
}

func (h *complaintHandler) complaint(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		h.respond(w, r, nil, complaints.ErrNotFound)
		return
	}
	c, err := h.q.Complaint(r.Context(), client(r), id)
	h.respond(w, r, c, err)
}

func (h *complaintHandler) queue(w http.ResponseWriter, r *http.Request) {
	status := r.URL.Query().Get("status")
	if status != "" && status != "RAISED" && status != "RESOLVED" && status != "REJECTED" {
		problem.Write(w, problem.Validation(problem.FieldError{Field: "status", Message: "status must be RAISED, RESOLVED or REJECTED"}))
		return
	}
	list, err := h.q.Queue(r.Context(), status)
	h.respond(w, r, list, err)
}

func (h *complaintHandler) respond(w http.ResponseWriter, r *http.Request, body any, err error) {
	switch {
	case err == nil:
		w.Header().Set("Cache-Control", "no-store")
		httpjson.Write(w, http.StatusOK, body)
	case errors.Is(err, complaints.ErrNotFound):
		problem.Write(w, problem.New(http.StatusNotFound, problem.CodeComplaintNotFound, "no such complaint"))
	case r.Context().Err() != nil:
		problem.Write(w, problem.New(http.StatusServiceUnavailable, problem.CodeDependencyUnavailable, "request cancelled"))
	case errors.Is(err, complaints.ErrUnavailable):
		h.log.WarnContext(r.Context(), "complaint query not answered: dependency unavailable", "err", err)
		problem.Write(w, problem.Unavailable("the read models are unavailable; retry"))
	default:
		h.log.ErrorContext(r.Context(), "complaint query failed", "err", err)
		problem.Write(w, problem.Internal())
	}
}
