package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"

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
