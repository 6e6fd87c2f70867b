package httpapi

import (
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"upi/command-service/internal/app"
	"upi/command-service/internal/domain"
	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
)

// registerMerchant mounts the commands of QR codes and mandates.
func registerMerchant(r chi.Router, h *handlers, m metrics) {
	r.With(m.instrument("create_qr")).Post(contract.PathQRCodes, h.createQR())
	registerMandates(r, h, m)
}

func (h *handlers) createQR() http.HandlerFunc {
	return clientCommand(h, http.StatusCreated,
		func(_ *http.Request, req contract.QRRequest) (contract.CreateQR, *problem.Problem) {
			return req.Validate(h.limits)
		},
		h.svc.CreateQR,
		func(q contract.QR) string { return contract.PathQRCodes + "/" + q.QRID })
}

// registerMandates mounts the mandates' commands and the timer's internal route.
func registerMandates(r chi.Router, h *handlers, m metrics) {
	r.With(m.instrument("request_mandate")).Post(contract.PathMandates, h.requestMandate())
	for action, run := range mandateActions {
		r.With(m.instrument(action+"_mandate")).Post(contract.PathMandates+"/{mandate_id}/"+action, h.mandateAction(run.who, run.act))
	}
	r.With(m.instrument("notify_debit")).Post(contract.PathMandates+"/{mandate_id}/notifications", h.notifyDebit())
	r.With(m.instrument("approve_debit")).Post(contract.PathMandates+"/{mandate_id}/notifications/{notification_id}/approve", h.approveDebit)
	r.With(m.instrument("mandate_timers")).Post(contract.PathMandateTimers, h.mandateTimers)
}

func (h *handlers) requestMandate() http.HandlerFunc {
	return clientCommand(h, http.StatusCreated,
		func(_ *http.Request, req contract.MandateRequestBody) (contract.RequestMandate, *problem.Problem) {
			return req.Validate(h.limits)
		},
		h.svc.RequestMandate,
		func(m contract.Mandate) string { return contract.PathMandates + "/" + m.MandateID })
}

type mandateAction struct {
	who string
	act app.MandateAction
}

// mandateActions are the parties' decisions on a mandate, by the last segment of their path.
var mandateActions = map[string]mandateAction{
	"approve": {app.MandatePayer, func(m domain.Mandate, _ string, now time.Time) ([]events.Payload, error) {
		return m.Approve(m.PayerClient, now)
	}},
	"decline": {app.MandatePayer, func(m domain.Mandate, _ string, now time.Time) ([]events.Payload, error) {
		return m.Decline(m.PayerClient, now)
	}},
	"pause": {app.MandatePayer, func(m domain.Mandate, _ string, _ time.Time) ([]events.Payload, error) {
		return m.Pause(m.PayerClient)
	}},
	"resume": {app.MandatePayer, func(m domain.Mandate, _ string, _ time.Time) ([]events.Payload, error) {
		return m.Resume(m.PayerClient)
	}},
	"revoke": {app.MandateEither, func(m domain.Mandate, party string, _ time.Time) ([]events.Payload, error) {
		return m.Revoke("", party)
	}},
}

// mandateID is the mandate named in the path; an id that cannot be one names no mandate.
func mandateID(r *http.Request) (uuid.UUID, *problem.Problem) {
	id, err := uuid.Parse(chi.URLParam(r, "mandate_id"))
	if err != nil {
		return uuid.Nil, problem.New(http.StatusNotFound, problem.CodeMandateNotFound, "no such mandate")
	}
	return id, nil
}

func (h *handlers) mandateAction(who string, act app.MandateAction) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, p := caller(r)
		if p != nil {
			h.fail(w, r, p)
			return
		}
		id, p := mandateID(r)
		if p != nil {
			h.fail(w, r, p)
			return
		}
		m, replayed, err := h.svc.ActOnMandate(r.Context(), c, id, r.URL.Path, who, act)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeAnswer(w, http.StatusOK, m, replayed)
	}
}

func (h *handlers) notifyDebit() http.HandlerFunc {
	return clientCommand(h, http.StatusCreated,
		func(r *http.Request, req contract.MandateNotifyBody) (contract.NotifyDebit, *problem.Problem) {
			return req.Validate(chi.URLParam(r, "mandate_id"), h.limits)
		},
		h.svc.NotifyDebit, nil)
}

// approveDebit is the payer's approval of one debit above the no-authentication limit.
func (h *handlers) approveDebit(w http.ResponseWriter, r *http.Request) {
	c, p := caller(r)
	if p != nil {
		h.fail(w, r, p)
		return
	}
	id, p := mandateID(r)
	if p != nil {
		h.fail(w, r, p)
		return
	}
	nid, err := uuid.Parse(chi.URLParam(r, "notification_id"))
	if err != nil {
		h.fail(w, r, problem.New(http.StatusNotFound, problem.CodeDebitNotFound, "no such debit"))
		return
	}
	m, replayed, err := h.svc.ActOnMandate(r.Context(), c, id, r.URL.Path, app.MandatePayer,
		func(m domain.Mandate, _ string, now time.Time) ([]events.Payload, error) {
			return m.ApproveDebit(nid.String(), m.PayerClient, now)
		})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeAnswer(w, http.StatusOK, m, replayed)
}

// mandateTimers decides what is due for the mandates event-consumers' timer found due
// (contract.PathMandateTimers); each item fails alone, only a database failure fails the call.
func (h *handlers) mandateTimers(w http.ResponseWriter, r *http.Request) {
	var req contract.MandateTimersRequest
	if p := httpjson.Decode(w, r, &req); p != nil {
		h.fail(w, r, p)
		return
	}
	if len(req.Items) == 0 || len(req.Items) > contract.MaxMandateTimers {
		h.fail(w, r, problem.New(http.StatusBadRequest, problem.CodeValidation,
			fmt.Sprintf("items must hold 1 to %d items", contract.MaxMandateTimers)))
		return
	}
	outcomes, err := h.svc.AdvanceMandates(r.Context(), workflowCaller(r), req.Items)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := contract.MandateTimersResponse{Results: make([]contract.MandateTimerResult, len(outcomes))}
	for i, o := range outcomes {
		out.Results[i] = contract.MandateTimerResult{MandateTimer: req.Items[i], EventTypes: o.EventTypes}
		if o.Err != nil {
			out.Results[i].Problem = h.problem(r, o.Err)
		}
	}
	httpjson.Write(w, http.StatusOK, out)
}
