package httpapi

import (
	"bytes"
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"

	"upi/command-service/internal/app"
	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
)

// raiseComplaint is POST /v1/payments/{payment_id}/complaints, by the owner of the payment's payer.
func (h *handlers) raiseComplaint() http.HandlerFunc {
	return clientCommand(h, http.StatusCreated,
		func(r *http.Request, req contract.ComplaintRequest) (contract.RaiseComplaint, *problem.Problem) {
			cmd, p := req.Validate(chi.URLParam(r, "payment_id"))
			if p != nil && len(p.Errors) > 0 && p.Errors[0].Field == "payment_id" {
				return cmd, problem.New(http.StatusNotFound, problem.CodePaymentNotFound, "no such payment")
			}
			return cmd, p
		},
		h.svc.RaiseComplaint,
		func(c contract.Complaint) string { return "/v1/complaints/" + c.ComplaintID })
}

// complaintResolutions resolves from the log the complaints event-consumers' process found answerable
// (contract.PathComplaintResolutions); each fails alone, only a database failure fails the call.
func (h *handlers) complaintResolutions(w http.ResponseWriter, r *http.Request) {
	var req contract.ComplaintResolutionsRequest
	if p := httpjson.Decode(w, r, &req); p != nil {
		h.fail(w, r, p)
		return
	}
	if p := req.Check(); p != nil {
		h.fail(w, r, p)
		return
	}
	outcomes, err := h.svc.ResolveComplaints(r.Context(), workflowCaller(r), req.Complaints)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := contract.ComplaintResolutionsResponse{Results: make([]contract.ComplaintResolutionResult, len(outcomes))}
	for i, o := range outcomes {
		out.Results[i] = contract.ComplaintResolutionResult{ComplaintID: req.Complaints[i].ComplaintID, EventType: o.EventType}
		if o.Err != nil {
			out.Results[i].Problem = h.problem(r, o.Err)
		}
	}
	httpjson.Write(w, http.StatusOK, out)
}

// acceptComplaint is POST /v1/complaints/{complaint_id}/accept, by the merchant (the owner of the
// payment's payee): the disputed amount is refunded through the refund process.
// The body is optional: none, or {"note": ...}.
func (h *handlers) acceptComplaint() http.HandlerFunc {
	withBody := clientCommand(h, http.StatusOK,
		func(r *http.Request, req contract.AcceptComplaintRequest) (contract.AnswerComplaint, *problem.Problem) {
			return req.Validate(chi.URLParam(r, "complaint_id"))
		},
		h.svc.AnswerComplaint, nil)
	return func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(io.LimitReader(r.Body, contract.MaxBodyBytes+1))
		if err != nil {
			h.fail(w, r, problem.New(http.StatusBadRequest, problem.CodeMalformedJSON, "the body could not be read"))
			return
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			raw = []byte("{}")
		}
		r.Body = io.NopCloser(bytes.NewReader(raw))
		withBody(w, r)
	}
}

// rejectComplaint is POST /v1/complaints/{complaint_id}/reject {"reason": ...}, by the merchant.
func (h *handlers) rejectComplaint() http.HandlerFunc {
	return clientCommand(h, http.StatusOK,
		func(r *http.Request, req contract.RejectComplaintRequest) (contract.AnswerComplaint, *problem.Problem) {
			return req.Validate(chi.URLParam(r, "complaint_id"))
		},
		h.svc.AnswerComplaint, nil)
}

// complaintChargebacks charges back the disputes event-consumers' process found past their due_at
// (contract.PathComplaintChargebacks); each fails alone, only a database failure fails the call.
func (h *handlers) complaintChargebacks(w http.ResponseWriter, r *http.Request) {
	var req contract.ComplaintResolutionsRequest
	if p := httpjson.Decode(w, r, &req); p != nil {
		h.fail(w, r, p)
		return
	}
	if p := req.Check(); p != nil {
		h.fail(w, r, p)
		return
	}
	outcomes, err := h.svc.ChargebackComplaints(r.Context(), workflowCaller(r), req.Complaints)
	h.writeOutcomes(w, r, req.Complaints, outcomes, err)
}

// complaintRefundRetries tries again the failed refunds of settled disputes
// (contract.PathComplaintRefundRetries); each fails alone, only a database failure fails the call.
func (h *handlers) complaintRefundRetries(w http.ResponseWriter, r *http.Request) {
	var req contract.ComplaintRetriesRequest
	if p := httpjson.Decode(w, r, &req); p != nil {
		h.fail(w, r, p)
		return
	}
	if p := req.Check(); p != nil {
		h.fail(w, r, p)
		return
	}
	outcomes, err := h.svc.RetryComplaintRefunds(r.Context(), workflowCaller(r), req.Retries)
	refs := make([]contract.ComplaintRef, len(req.Retries))
	for i, x := range req.Retries {
		refs[i] = contract.ComplaintRef{ComplaintID: x.ComplaintID, PaymentID: x.PaymentID}
	}
	h.writeOutcomes(w, r, refs, outcomes, err)
}

// writeOutcomes answers a batch of complaint commands: one result per complaint.
func (h *handlers) writeOutcomes(w http.ResponseWriter, r *http.Request, refs []contract.ComplaintRef, outcomes []app.ResolutionOutcome, err error) {
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := contract.ComplaintResolutionsResponse{Results: make([]contract.ComplaintResolutionResult, len(outcomes))}
	for i, o := range outcomes {
		out.Results[i] = contract.ComplaintResolutionResult{ComplaintID: refs[i].ComplaintID, EventType: o.EventType}
		if o.Err != nil {
			out.Results[i].Problem = h.problem(r, o.Err)
		}
	}
	httpjson.Write(w, http.StatusOK, out)
}
