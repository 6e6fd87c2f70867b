package httpapi

import (
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"regexp"

	"github.com/go-chi/chi/v5"

	"upi/query-service/internal/app/settlement"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
)

// maxReconFile bounds a submitted reconciliation file (the gateway's cap on that route is the same).
const maxReconFile = 8 << 20

var (
	cycleID = regexp.MustCompile(`^[0-9A-Za-z.:-]{1,40}$`)
	bankID  = regexp.MustCompile(`^[a-z0-9]{1,64}$`)
)

type settlementHandler struct {
	q   *settlement.Queries
	log *slog.Logger
}

// SettlementRoutes returns the mount of the operators' settlement routes under /ops: the cycles, a
// cycle's positions, a bank's reconciliation file and the check of a submitted file.
func SettlementRoutes(q *settlement.Queries, log *slog.Logger) Mount {
	h := &settlementHandler{q: q, log: log}
	return Mount{Ops: func(r chi.Router) {
		r.Get("/settlement/cycles", h.cycles)
		r.Get("/settlement/cycles/{cycle}", h.cycle)
		r.Get("/settlement/cycles/{cycle}/banks/{bank}/file", h.file)
		r.Post("/settlement/cycles/{cycle}/banks/{bank}/reconciliation", h.reconcile)
	}}
}

func (h *settlementHandler) cycles(w http.ResponseWriter, r *http.Request) {
	list, err := h.q.Cycles(r.Context())
	h.respond(w, r, list, err)
}

func (h *settlementHandler) cycle(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "cycle")
	if !cycleID.MatchString(id) {
		h.fail(w, r, settlement.ErrCycleNotFound)
		return
	}
	d, err := h.q.Cycle(r.Context(), id)
	h.respond(w, r, d, err)
}

// params are a file route's cycle and bank, or a problem.
func params(r *http.Request) (string, string, *problem.Problem) {
	id, bank := chi.URLParam(r, "cycle"), chi.URLParam(r, "bank")
	if !cycleID.MatchString(id) {
		return "", "", problem.New(http.StatusNotFound, problem.CodeCycleNotFound, "no such settlement cycle")
	}
	if !bankID.MatchString(bank) {
		return "", "", problem.Validation(problem.FieldError{Field: "bank", Message: "a bank is a VPA handle: lower-case letters and digits"})
	}
	return id, bank, nil
}

// file is a bank's reconciliation file: JSON, or CSV with ?format=csv (the gateway turns Accept: text/csv
// into it).
func (h *settlementHandler) file(w http.ResponseWriter, r *http.Request) {
	id, bank, p := params(r)
	format := r.URL.Query().Get("format")
	if p == nil && format != "" && format != "csv" && format != "json" {
		p = problem.Validation(problem.FieldError{Field: "format", Message: "format must be csv or json"})
	}
	if p != nil {
		problem.Write(w, p)
		return
	}
	f, err := h.q.File(r.Context(), id, bank)
	if err != nil || format != "csv" {
		h.respond(w, r, f, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(settlement.CSV(f))
}

// reconcile checks a submitted file (Content-Type text/csv, or application/json) against the ledger.
func (h *settlementHandler) reconcile(w http.ResponseWriter, r *http.Request) {
	id, bank, p := params(r)
	if p != nil {
		problem.Write(w, p)
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "text/csv" && mt != "application/json" {
		problem.Write(w, problem.New(http.StatusUnsupportedMediaType, problem.CodeUnsupportedMediaType,
			"send the file as text/csv or application/json"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxReconFile))
	if err != nil {
		problem.Write(w, problem.New(http.StatusRequestEntityTooLarge, problem.CodeBodyTooLarge, "the file is too large"))
		return
	}
	report, err := h.q.Reconcile(r.Context(), id, bank, body, mt == "application/json")
	h.respond(w, r, report, err)
}

func (h *settlementHandler) respond(w http.ResponseWriter, r *http.Request, body any, err error) {
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpjson.Write(w, http.StatusOK, body)
}

func (h *settlementHandler) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, settlement.ErrCycleNotFound):
		problem.Write(w, problem.New(http.StatusNotFound, problem.CodeCycleNotFound, "no such settlement cycle"))
	case errors.Is(err, settlement.ErrCycleOpen):
		problem.Write(w, problem.New(http.StatusConflict, problem.CodeCycleOpen, "the cycle is still open: its file is made once it closes"))
	case errors.Is(err, settlement.ErrBadFile):
		problem.Write(w, problem.Validation(problem.FieldError{Field: "file", Message: err.Error()}))
	case r.Context().Err() != nil:
		problem.Write(w, problem.New(http.StatusServiceUnavailable, problem.CodeDependencyUnavailable, "request cancelled"))
	case errors.Is(err, settlement.ErrUnavailable):
		h.log.WarnContext(r.Context(), "settlement query not answered: dependency unavailable", "err", err)
		problem.Write(w, problem.Unavailable("the read models are unavailable; retry"))
	default:
		h.log.ErrorContext(r.Context(), "settlement query failed", "err", err)
		problem.Write(w, problem.Internal())
	}
}
