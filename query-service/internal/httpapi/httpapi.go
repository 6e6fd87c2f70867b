// Package httpapi is the query service's HTTP surface: it decodes a request, calls one query of app, and
// encodes the answer with the read-your-writes headers. Errors become problem+json in one place (fail).
package httpapi

import (
	"context"
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
	"upi/shared/contract/position"
	"upi/shared/contract/problem"
	"upi/shared/contract/vpa"
	"upi/shared/platform/httpjson"
	"upi/shared/platform/servicetoken"
)

// Handler serves the GET routes of the public contract.
type Handler struct {
	q   *app.Queries
	log *slog.Logger
}

// Mount adds routes of another package's reads: V1 under /v1 (clients'), Ops under /ops (operators').
type Mount struct {
	V1, Ops func(chi.Router)
}

// Routes mounts the routes on r, and the mounts' (SettlementRoutes, ComplaintRoutes).
func Routes(r chi.Router, q *app.Queries, log *slog.Logger, mounts ...Mount) {
	h := &Handler{q: q, log: log}
	r.Route("/v1", func(r chi.Router) {
		r.Use(requireClient)
		r.Get("/accounts/{vpa}", accountRead(h, q.Account))
		r.Get("/accounts/{vpa}/balance", accountRead(h, q.Balance))
		r.Get("/accounts/{vpa}/transactions", h.transactions)
		r.Get("/vpas/{vpa}", h.vpa)
		r.Get("/payments", h.paymentsByRRN)
		r.Get("/payments/{id}", longPoll(h, q.Payment))
		r.Get("/payments/{id}/events", h.paymentEvents)
		r.Get("/refunds/{id}", longPoll(h, q.Refund))
		r.Get("/collect-requests/{id}", h.collect)
		r.Get("/accounts/{vpa}/collect-requests", h.collects)
		r.Get("/withdrawals/{id}", h.withdrawal)
		// QR codes and mandates (merchant.go).
		merchantRoutes(r, h)
		for _, m := range mounts {
			if m.V1 != nil {
				m.V1(r)
			}
		}
	})
	// Operators' reads: no client, as they belong to no client's accounts. The gateway serves them under
	// /v1/ops/ to operator keys only (OPERATOR_KEYS) and forwards them here.
	r.Route("/ops", func(r chi.Router) {
		r.Use(requireOperator)
		r.Get("/settlement-accounts", h.settlementAccounts)
		for _, m := range mounts {
			if m.Ops != nil {
				m.Ops(r)
			}
		}
	})
}

// requireClient refuses requests that did not come through the gateway's authentication.
func requireClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.TrimSpace(r.Header.Get(contract.HeaderClientID)) == "" {
			problem.Write(w, problem.New(http.StatusUnauthorized, problem.CodeUnauthenticated, "no authenticated client"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireOperator refuses operators' reads that did not come from the gateway acting for an operator: the
// service's token check sets the operator header from the token, and deletes it from every other request.
func requireOperator(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.TrimSpace(r.Header.Get(servicetoken.HeaderOperatorID)) == "" {
			problem.Write(w, problem.New(http.StatusForbidden, problem.CodeForbidden, "an operator route"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func client(r *http.Request) string { return strings.TrimSpace(r.Header.Get(contract.HeaderClientID)) }

// accountRead serves a read of one of the caller's accounts: the account or its balance.
func accountRead[T any](h *Handler, query func(context.Context, string, string, app.Consistency) (T, app.Freshness, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, c, p := accountRequest(r)
		if p != nil {
			problem.Write(w, p)
			return
		}
		a, f, err := query(r.Context(), client(r), v, c)
		h.respond(w, r, f, a, err)
	}
}

func (h *Handler) transactions(w http.ResponseWriter, r *http.Request) {
	v, c, pg, errs := pageRequest(r)
	if len(errs) > 0 {
		problem.Write(w, problem.Validation(errs...))
		return
	}
	items, next, f, err := h.q.Transactions(r.Context(), client(r), v, pg.cursor, pg.limit, c)
	if items == nil {
		items = []contract.Transaction{}
	}
	h.respond(w, r, f, contract.TransactionPage{Items: items, NextCursor: makeCursor(next)}, err)
}

func (h *Handler) vpa(w http.ResponseWriter, r *http.Request) {
	v, c, p := accountRequest(r)
	if p != nil {
		problem.Write(w, p)
		return
	}
	found, f, err := h.q.VPA(r.Context(), v, c)
	h.respond(w, r, f, found, err)
}

func (h *Handler) paymentsByRRN(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has("merchant_reference") {
		h.paymentsByReference(w, r)
		return
	}
	c, errs := consistency(r)
	rrn := r.URL.Query().Get("rrn")
	if !contract.IsRRN(rrn) {
		errs = append(errs, problem.FieldError{Field: "rrn", Message: "rrn must be 12 digits"})
	}
	if len(errs) > 0 {
		problem.Write(w, problem.Validation(errs...))
		return
	}
	items, f, err := h.q.PaymentsByRRN(r.Context(), client(r), rrn, c)
	h.respond(w, r, f, contract.PaymentList{Items: items}, err)
}

// longPoll serves a read that may wait for its resource to settle (?wait=): a payment or a refund.
func longPoll[T any](h *Handler, query func(context.Context, string, uuid.UUID, time.Duration, app.Consistency) (T, app.Freshness, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, c, errs := paymentRequest(r)
		wait, fe := waitParam(r)
		if errs = append(errs, fe...); len(errs) > 0 {
			problem.Write(w, problem.Validation(errs...))
			return
		}
		v, f, err := query(r.Context(), client(r), id, wait, c)
		h.respond(w, r, f, v, err)
	}
}

// withdrawal serves a withdrawal of one of the caller's accounts; ?wait= waits for it to be projected.
func (h *Handler) withdrawal(w http.ResponseWriter, r *http.Request) {
	c, errs := consistency(r)
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		errs = append(errs, problem.FieldError{Field: "withdrawal_id", Message: "must be a UUID"})
	}
	wait, fe := waitParam(r)
	if errs = append(errs, fe...); len(errs) > 0 {
		problem.Write(w, problem.Validation(errs...))
		return
	}
	wd, f, err := h.q.Withdrawal(r.Context(), client(r), id, wait, c)
	h.respond(w, r, f, wd, err)
}

// settlementAccounts lists the banks' settlement accounts, for operators.
func (h *Handler) settlementAccounts(w http.ResponseWriter, r *http.Request) {
	c, errs := consistency(r)
	if len(errs) > 0 {
		problem.Write(w, problem.Validation(errs...))
		return
	}
	list, f, err := h.q.SettlementAccounts(r.Context(), c)
	h.respond(w, r, f, list, err)
}

// waitParam reads ?wait=, a duration from 0s to 30s (0 when absent).
func waitParam(r *http.Request) (time.Duration, []problem.FieldError) {
	s := r.URL.Query().Get("wait")
	if s == "" {
		return 0, nil
	}
	d, ok := contract.ParseWait(s)
	if !ok {
		return 0, []problem.FieldError{{Field: "wait", Message: "must be a duration from 0s to 30s, such as 5s"}}
	}
	return d, nil
}

func (h *Handler) collect(w http.ResponseWriter, r *http.Request) {
	c, fe := consistency(r)
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		problem.Write(w, problem.New(http.StatusNotFound, problem.CodeCollectNotFound, "no such collect request"))
		return
	}
	if len(fe) > 0 {
		problem.Write(w, problem.Validation(fe...))
		return
	}
	col, f, err := h.q.Collect(r.Context(), client(r), id, c)
	h.respond(w, r, f, col, err)
}

// collects lists the collect requests addressed to a payer the caller owns, newest first, paginated like
// transactions; ?status= keeps one status.
func (h *Handler) collects(w http.ResponseWriter, r *http.Request) {
	v, c, pg, errs := pageRequest(r)
	status := r.URL.Query().Get("status")
	if status != "" && !contract.IsCollectStatus(status) {
		errs = append(errs, problem.FieldError{Field: "status", Message: "must be PENDING, APPROVED, DECLINED or EXPIRED"})
	}
	if len(errs) > 0 {
		problem.Write(w, problem.Validation(errs...))
		return
	}
	items, next, f, err := h.q.Collects(r.Context(), client(r), v, status, pg.cursor, pg.limit, c)
	if items == nil {
		items = []contract.Collect{}
	}
	h.respond(w, r, f, contract.CollectPage{Items: items, NextCursor: makeCursor(next)}, err)
}

func (h *Handler) paymentEvents(w http.ResponseWriter, r *http.Request) {
	id, c, errs := paymentRequest(r)
	if len(errs) > 0 {
		problem.Write(w, problem.Validation(errs...))
		return
	}
	items, f, err := h.q.PaymentEvents(r.Context(), client(r), id, c)
	h.respond(w, r, f, contract.PaymentEventPage{Items: items}, err)
}

// respond writes the freshness headers (on errors too: a 404 also reflects a position) and then the body
// or the problem.
func (h *Handler) respond(w http.ResponseWriter, r *http.Request, f app.Freshness, body any, err error) {
	w.Header().Set(contract.HeaderProjectionPosition, f.Position.Token())
	if f.Stale {
		w.Header().Set(contract.HeaderProjectionStale, "true")
	}
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, body)
}

// fail is the one place where errors become HTTP problems.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, app.ErrAccountNotFound):
		problem.Write(w, problem.New(http.StatusNotFound, problem.CodeAccountNotFound, "no such account"))
	case errors.Is(err, app.ErrVPANotFound):
		problem.Write(w, problem.New(http.StatusNotFound, problem.CodeVPANotFound, "no account has this vpa"))
	case errors.Is(err, app.ErrAccountClosed):
		problem.Write(w, problem.New(http.StatusGone, problem.CodeAccountClosed, "the account was erased and is closed"))
	case errors.Is(err, app.ErrPaymentNotFound):
		problem.Write(w, problem.New(http.StatusNotFound, problem.CodePaymentNotFound, "no such payment"))
	case errors.Is(err, app.ErrCollectNotFound):
		problem.Write(w, problem.New(http.StatusNotFound, problem.CodeCollectNotFound, "no such collect request"))
	case errors.Is(err, app.ErrRefundNotFound):
		problem.Write(w, problem.New(http.StatusNotFound, problem.CodeRefundNotFound, "no such refund"))
	case errors.Is(err, app.ErrWithdrawalNotFound):
		problem.Write(w, problem.New(http.StatusNotFound, problem.CodeWithdrawalNotFound, "no such withdrawal"))
	case r.Context().Err() != nil:
		// The client went away; nobody reads this answer.
		problem.Write(w, problem.New(http.StatusServiceUnavailable, problem.CodeDependencyUnavailable, "request cancelled"))
	case errors.Is(err, app.ErrUnavailable):
		h.log.WarnContext(r.Context(), "query not answered: dependency unavailable", "err", err)
		problem.Write(w, problem.Unavailable("the read models are unavailable; retry"))
	default:
		// A defect (a row that does not scan, a query the schema refuses): retrying will not help.
		h.log.ErrorContext(r.Context(), "query failed", "err", err)
		problem.Write(w, problem.Internal())
	}
}

// accountRequest reads the VPA and min_position of an account route.
func accountRequest(r *http.Request) (string, app.Consistency, *problem.Problem) {
	var errs []problem.FieldError
	v, err := vpa.Parse(chi.URLParam(r, "vpa"))
	if err != nil {
		errs = append(errs, problem.FieldError{Field: "vpa", Message: err.Error()})
	}
	c, fe := consistency(r)
	errs = append(errs, fe...)
	if len(errs) > 0 {
		return "", c, problem.Validation(errs...)
	}
	return v.String(), c, nil
}

// page is where a page of a list starts (0: at the newest) and how many items it holds at most.
type page struct{ cursor, limit int }

// pageRequest reads the VPA, min_position, ?limit= and ?cursor= of a paginated account route.
func pageRequest(r *http.Request) (string, app.Consistency, page, []problem.FieldError) {
	v, c, p := accountRequest(r)
	var errs []problem.FieldError
	if p != nil {
		errs = p.Errors
	}
	pg := page{limit: contract.DefaultPageLimit}
	if s := r.URL.Query().Get("limit"); s != "" {
		n, ok := contract.ParsePageLimit(s)
		if !ok {
			errs = append(errs, problem.FieldError{Field: "limit", Message: "must be an integer from 1 to 200"})
		}
		pg.limit = n
	}
	if s := r.URL.Query().Get("cursor"); s != "" {
		n, ok := parseCursor(s)
		if !ok {
			errs = append(errs, problem.FieldError{Field: "cursor", Message: "is not a cursor returned by this API"})
		}
		pg.cursor = n
	}
	return v, c, pg, errs
}

func paymentRequest(r *http.Request) (uuid.UUID, app.Consistency, []problem.FieldError) {
	var errs []problem.FieldError
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		errs = append(errs, problem.FieldError{Field: "payment_id", Message: "must be a UUID"})
	}
	c, fe := consistency(r)
	return id, c, append(errs, fe...)
}

func consistency(r *http.Request) (app.Consistency, []problem.FieldError) {
	s, ok := r.URL.Query()["min_position"]
	if !ok {
		return app.Consistency{}, nil
	}
	p, err := position.Parse(strings.Join(s, ""))
	if err != nil || len(s) != 1 {
		return app.Consistency{}, []problem.FieldError{{Field: "min_position", Message: "is not a position token returned by this API"}}
	}
	return app.Consistency{MinPosition: &p}, nil
}

// A cursor is opaque to clients: the account version the next page starts below.
const cursorPrefix = "tx1."

// makeCursor is the cursor of the page that starts below version; there is none (0) after the last page.
func makeCursor(version int) string {
	if version == 0 {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.Itoa(version)))
}

func parseCursor(s string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || !strings.HasPrefix(string(b), cursorPrefix) {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(b), cursorPrefix))
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}
