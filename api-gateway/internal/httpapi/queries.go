package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"upi/api-gateway/internal/app"
	"upi/shared/contract"
	"upi/shared/contract/position"
	"upi/shared/contract/problem"
	"upi/shared/contract/vpa"
	"upi/shared/platform/observability"
)

// maxCursor bounds the opaque pagination cursor, which only the query service interprets.
const maxCursor = 512

func (s *server) getAccount(w http.ResponseWriter, r *http.Request) {
	s.query(w, r, checkVPA(r), queryParams{})
}

func (s *server) listTransactions(w http.ResponseWriter, r *http.Request) {
	s.query(w, r, checkVPA(r), queryParams{limit: true, cursor: true})
}

func (s *server) lookupVPA(w http.ResponseWriter, r *http.Request) {
	s.query(w, r, checkVPA(r), queryParams{})
}

func (s *server) findPayments(w http.ResponseWriter, r *http.Request) {
	s.query(w, r, nil, queryParams{rrn: true})
}

func (s *server) getPayment(w http.ResponseWriter, r *http.Request) {
	s.query(w, r, checkPaymentID(r), queryParams{wait: true})
}

func (s *server) getRefund(w http.ResponseWriter, r *http.Request) {
	var errs []problem.FieldError
	if _, err := uuid.Parse(chi.URLParam(r, "refund_id")); err != nil {
		errs = []problem.FieldError{{Field: "refund_id", Message: "refund_id must be a UUID"}}
	}
	s.query(w, r, errs, queryParams{wait: true})
}

func (s *server) getWithdrawal(w http.ResponseWriter, r *http.Request) {
	if _, err := uuid.Parse(chi.URLParam(r, "withdrawal_id")); err != nil {
		s.fail(w, r, problem.New(http.StatusNotFound, problem.CodeWithdrawalNotFound, "no such withdrawal"))
		return
	}
	s.query(w, r, nil, queryParams{wait: true})
}

func (s *server) getCollect(w http.ResponseWriter, r *http.Request) {
	if _, err := uuid.Parse(chi.URLParam(r, "collect_id")); err != nil {
		s.fail(w, r, problem.New(http.StatusNotFound, problem.CodeCollectNotFound, "no such collect request"))
		return
	}
	s.query(w, r, nil, queryParams{})
}

func (s *server) listCollects(w http.ResponseWriter, r *http.Request) {
	s.query(w, r, checkVPA(r), queryParams{limit: true, cursor: true, status: true})
}

func (s *server) getPaymentEvents(w http.ResponseWriter, r *http.Request) {
	s.query(w, r, checkPaymentID(r), queryParams{})
}

// queryParams names the query parameters a route takes besides min_position, which every GET takes.
type queryParams struct {
	limit, cursor, wait, rrn, status bool
}

// query validates a GET's path and query at the edge and relays the query service's answer.
func (s *server) query(w http.ResponseWriter, r *http.Request, pathErrs []problem.FieldError, params queryParams) {
	errs := pathErrs
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		errs = append(errs, problem.FieldError{Field: "query", Message: "the query string is not valid URL encoding"})
	}
	minPosition := q.Has("min_position")
	if minPosition {
		if _, err := position.Parse(q.Get("min_position")); err != nil {
			errs = append(errs, problem.FieldError{Field: "min_position", Message: "min_position must be a position token from an earlier answer"})
		}
	}
	if params.limit && q.Has("limit") {
		if _, ok := contract.ParsePageLimit(q.Get("limit")); !ok {
			errs = append(errs, problem.FieldError{Field: "limit", Message: "limit must be a whole number from 1 to 200"})
		}
	}
	if params.cursor && q.Has("cursor") {
		if c := q.Get("cursor"); c == "" || len(c) > maxCursor {
			errs = append(errs, problem.FieldError{Field: "cursor", Message: "cursor must be the next_cursor of an earlier page"})
		}
	}
	if params.rrn && q.Has("merchant_reference") && !q.Has("rrn") {
		// GET /v1/payments?merchant_reference= (QR and intent payments): the query service checks it.
		if ref := q.Get("merchant_reference"); ref == "" || len(ref) > 35 {
			errs = append(errs, problem.FieldError{Field: "merchant_reference", Message: "merchant_reference must be 1 to 35 characters"})
		}
	} else if params.rrn && !contract.IsRRN(q.Get("rrn")) {
		errs = append(errs, problem.FieldError{Field: "rrn", Message: "rrn must be the 12 digits of a retrieval reference number"})
	}
	if params.status && q.Has("status") && !contract.IsCollectStatus(q.Get("status")) {
		errs = append(errs, problem.FieldError{Field: "status", Message: "status must be PENDING, APPROVED, DECLINED or EXPIRED"})
	}
	var wait time.Duration
	if params.wait && q.Has("wait") {
		d, ok := contract.ParseWait(q.Get("wait"))
		if !ok {
			errs = append(errs, problem.FieldError{Field: "wait", Message: "wait must be a duration from 0s to 30s, such as 5s"})
		}
		wait = d
	}
	if errs != nil {
		s.fail(w, r, problem.Validation(errs...))
		return
	}
	// The path is forwarded decoded: its parameters were validated above (a VPA or a UUID, nothing that
	// needs escaping), so a percent-encoded "@" reaches the service in the one form every service reads.
	// The query is re-encoded from what was parsed, so the service gets exactly what was validated.
	path := r.URL.Path
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	resp, err := s.App.Query(r.Context(), app.Query{
		Client: clientID(r.Context()), RequestID: observability.RequestID(r.Context()),
		Path: path, MinPosition: minPosition, Wait: wait,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	relay(w, resp)
}

// pathVPA is the {vpa} path parameter; a client may percent-encode its "@".
func pathVPA(r *http.Request) string {
	raw := chi.URLParam(r, "vpa")
	if v, err := url.PathUnescape(raw); err == nil {
		return v
	}
	return raw
}

func checkVPA(r *http.Request) []problem.FieldError {
	if _, err := vpa.Parse(pathVPA(r)); err != nil {
		return []problem.FieldError{{Field: "vpa", Message: err.Error()}}
	}
	return nil
}

func checkPaymentID(r *http.Request) []problem.FieldError {
	if _, err := uuid.Parse(chi.URLParam(r, "payment_id")); err != nil {
		return []problem.FieldError{{Field: "payment_id", Message: "payment_id must be a UUID"}}
	}
	return nil
}

// ledgerCheck is GET /v1/ops/ledger-check: the consumers' replay of the log against the books, for an
// operator (?stuck_after= moves the in-flight threshold).
func (s *server) ledgerCheck(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	path := "/admin/ledger-check"
	if err == nil && q.Has("stuck_after") {
		if d, perr := time.ParseDuration(q.Get("stuck_after")); perr != nil || d <= 0 {
			err = perr
			if err == nil {
				err = errors.New("not positive")
			}
		} else {
			path += "?stuck_after=" + url.QueryEscape(d.String())
		}
	}
	if err != nil {
		s.fail(w, r, problem.Validation(problem.FieldError{Field: "stuck_after", Message: "stuck_after must be a positive duration, such as 15m"}))
		return
	}
	resp, err := s.App.LedgerCheck(r.Context(), app.Query{Operator: operatorName(r.Context()),
		RequestID: observability.RequestID(r.Context()), Path: path})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	relay(w, resp)
}

// settlementAccounts is GET /v1/ops/settlement-accounts: every bank's settlement account, for an operator.
func (s *server) settlementAccounts(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	path, minPosition := "/ops/settlement-accounts", false
	if err == nil && q.Has("min_position") {
		if _, perr := position.Parse(q.Get("min_position")); perr != nil {
			err = perr
		} else {
			path, minPosition = path+"?min_position="+url.QueryEscape(q.Get("min_position")), true
		}
	}
	if err != nil {
		s.fail(w, r, problem.Validation(problem.FieldError{Field: "min_position", Message: "min_position must be a position token from an earlier answer"}))
		return
	}
	resp, err := s.App.Query(r.Context(), app.Query{Operator: operatorName(r.Context()),
		RequestID: observability.RequestID(r.Context()), Path: path, MinPosition: minPosition})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	relay(w, resp)
}
