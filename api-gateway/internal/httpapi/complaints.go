package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"upi/api-gateway/internal/app"
	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
)

// complain is the validator of POST /v1/payments/{payment_id}/complaints.
func (s *server) complain() validator {
	return body(func(req *contract.ComplaintRequest, r *http.Request) *problem.Problem {
		_, p := req.Validate(chi.URLParam(r, "payment_id"))
		return p
	})
}

// acceptComplaint is the validator of POST /v1/complaints/{complaint_id}/accept: no body, or
// {"note": ...}.
func acceptComplaint() validator {
	fp := app.NewFingerprinter[contract.AcceptComplaintRequest]()
	return func(w http.ResponseWriter, r *http.Request) (string, *problem.Problem) {
		raw, err := io.ReadAll(io.LimitReader(r.Body, contract.MaxBodyBytes+1))
		if err != nil {
			return "", problem.New(http.StatusBadRequest, problem.CodeMalformedJSON, "the body could not be read")
		}
		var req contract.AcceptComplaintRequest
		if len(bytes.TrimSpace(raw)) > 0 {
			r.Body = io.NopCloser(bytes.NewReader(raw))
			if p := httpjson.Decode(w, r, &req); p != nil {
				return "", p
			}
		}
		if _, p := req.Validate(chi.URLParam(r, "complaint_id")); p != nil {
			return "", p
		}
		return fp.Of(&req), nil
	}
}

// rejectComplaint is the validator of POST /v1/complaints/{complaint_id}/reject {"reason": ...}.
func rejectComplaint() validator {
	return body(func(req *contract.RejectComplaintRequest, r *http.Request) *problem.Problem {
		_, p := req.Validate(chi.URLParam(r, "complaint_id"))
		return p
	})
}

// getComplaint is GET /v1/complaints/{complaint_id}: the payer's owner, or the merchant's (the payee's
// owner), reads it; anyone else gets 404.
func (s *server) getComplaint(w http.ResponseWriter, r *http.Request) {
	if _, err := uuid.Parse(chi.URLParam(r, "complaint_id")); err != nil {
		s.fail(w, r, problem.New(http.StatusNotFound, problem.CodeComplaintNotFound, "no such complaint"))
		return
	}
	s.query(w, r, nil, queryParams{})
}

// complaintQueue is GET /v1/ops/complaints?status=RAISED|RESOLVED|REJECTED: the operators' queue.
func (s *server) complaintQueue(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	status := q.Get("status")
	if err != nil || (status != "" && status != "RAISED" && status != "RESOLVED" && status != "REJECTED") {
		s.fail(w, r, problem.Validation(problem.FieldError{Field: "status", Message: "status must be RAISED, RESOLVED or REJECTED"}))
		return
	}
	path := "/ops/complaints"
	if status != "" {
		path += "?status=" + status
	}
	s.forwardOps(w, r, path)
}
