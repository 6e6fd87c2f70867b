package workflow

import (
	"fmt"
	"net/http"

	"github.com/google/uuid"

	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/problem"
	"upi/shared/platform/eventstore"
)

// Next is the heart of the process manager, and pure: the step that an event calls for, or nil. The step
// names the account it moves money on, as the event names it, and the event that called for it.
func Next(e eventstore.Event) (*contract.Step, error) {
	if st, err := nextRefund(e); st != nil || err != nil {
		return st, err
	}
	switch e.Type {
	case events.PaymentInitiated, events.AccountDebited, events.DebitRejected, events.AccountCredited, events.DebitReversed:
	default:
		return nil, nil
	}
	p, err := eventstore.PayloadOf(e, events.Decode)
	if err != nil {
		return nil, err
	}
	var pid string
	var st contract.Step
	switch v := p.(type) {
	case events.PaymentInitiatedV1:
		pid, st = v.PaymentID, contract.Step{Step: contract.StepDebit, Account: v.PayerVPA}
	case events.AccountDebitedV1:
		pid, st = v.PaymentID, contract.Step{Step: contract.StepCredit, Account: v.CounterpartyVPA}
	case events.DebitRejectedV1:
		pid, st = v.PaymentID, contract.Step{Step: contract.StepFail, Code: v.Code, Reason: "the payer's debit was rejected"}
	case events.AccountCreditedV1:
		pid, st = v.PaymentID, contract.Step{Step: contract.StepComplete}
	case events.DebitReversedV1:
		pid, st = v.PaymentID, contract.Step{Step: contract.StepFail, Code: v.Code, Reason: "the payee could not be credited; the debit was reversed"}
	}
	if st.PaymentID, err = uuid.Parse(pid); err != nil {
		return nil, fmt.Errorf("%s %s: payment id %q: %w", e.Type, e.ID, pid, err)
	}
	st.CausationID = e.ID.String()
	return &st, nil
}

// nextRefund is Next for the refund saga, the payment's in reverse:
//
//	RefundReserved (payment) -> open -> RefundInitiated -> debit payee -> RefundDebited -> credit payer
//	  -> RefundCredited -> complete -> RefundCompleted -> record on the payment (RefundSettled)
//	RefundDebitRejected -> fail; RefundDebitReversed -> fail; RefundFailed -> record (releases the reservation)
func nextRefund(e eventstore.Event) (*contract.Step, error) {
	switch e.Type {
	case events.RefundReserved, events.RefundInitiated, events.RefundDebited, events.RefundDebitRejected,
		events.RefundCredited, events.RefundDebitReversed, events.RefundCompleted, events.RefundFailed:
	default:
		return nil, nil
	}
	p, err := eventstore.PayloadOf(e, events.Decode)
	if err != nil {
		return nil, err
	}
	t, _ := events.Refund(p)
	var st contract.Step
	switch v := p.(type) {
	case events.RefundReservedV1:
		st = contract.Step{Step: contract.StepRefundOpen}
	case events.RefundInitiatedV1:
		st = contract.Step{Step: contract.StepRefundDebit, Account: t.PayeeVPA}
	case events.RefundDebitedV1:
		st = contract.Step{Step: contract.StepRefundCredit, Account: t.PayerVPA}
	case events.RefundDebitRejectedV1:
		st = contract.Step{Step: contract.StepRefundFail, Code: v.Code, Reason: "the payee's refund debit was rejected"}
	case events.RefundCreditedV1:
		st = contract.Step{Step: contract.StepRefundComplete}
	case events.RefundDebitReversedV1:
		st = contract.Step{Step: contract.StepRefundFail, Code: v.Code, Reason: "the payer could not be credited; the refund debit was reversed"}
	case events.RefundCompletedV1, events.RefundFailedV1:
		st = contract.Step{Step: contract.StepRefundRecord}
	}
	if st.PaymentID, err = uuid.Parse(t.PaymentID); err != nil {
		return nil, fmt.Errorf("%s %s: payment id %q: %w", e.Type, e.ID, t.PaymentID, err)
	}
	if st.RefundID, err = uuid.Parse(t.RefundID); err != nil {
		return nil, fmt.Errorf("%s %s: refund id %q: %w", e.Type, e.ID, t.RefundID, err)
	}
	st.CausationID = e.ID.String()
	return &st, nil
}

// compensation is what a parked step is replaced by, so that its payment still ends: a debit that cannot
// be made is burnt (a later debit then finds it rejected), a credit that cannot be made is replaced by the
// debit's reversal. Steps after the money moved have none: they stay parked and are retried.
func compensation(st contract.Step) (contract.Step, bool) {
	c := contract.Step{PaymentID: st.PaymentID, RefundID: st.RefundID, Code: events.CodeProcessingError, CausationID: st.CausationID,
		TraceParent: st.TraceParent}
	switch st.Step {
	case contract.StepRefundDebit:
		c.Step, c.Account, c.Reason = contract.StepRefundRejectDebit, st.Account, "the refund debit step kept failing"
		return c, true
	case contract.StepRefundCredit:
		// The credit names the payer; the reversal is the payee's, which the command service looks up.
		c.Step, c.Reason = contract.StepRefundReverse, "the refund credit step kept failing"
		return c, true
	case contract.StepDebit:
		c.Step, c.Account, c.Reason = contract.StepRejectDebit, st.Account, "the debit step kept failing"
		return c, true
	case contract.StepCredit:
		// The credit names the payee; the reversal is the payer's, which the command service looks up.
		c.Step, c.Reason = contract.StepReverse, "the credit step kept failing"
		return c, true
	}
	return contract.Step{}, false
}

// reversal is what replaces a credit the payee's account refused: the debit's reversal, after which the
// payment fails with PAYEE_UNAVAILABLE.
func reversal(credit contract.Step) contract.Step {
	reverse := contract.StepReverse
	if credit.Step.Refund() {
		reverse = contract.StepRefundReverse
	}
	return contract.Step{PaymentID: credit.PaymentID, RefundID: credit.RefundID, Step: reverse,
		Code: events.CodePayeeUnavailable, Reason: "the payee could not be credited",
		CausationID: credit.CausationID, TraceParent: credit.TraceParent}
}

// payeeRefused reports whether a credit was refused by the payee's account itself (404 ACCOUNT_NOT_FOUND,
// or 422: the credit would take its balance beyond the limit). Those refusals are final.
func payeeRefused(st contract.Step, p *problem.Problem) bool {
	return (st.Step == contract.StepCredit || st.Step == contract.StepRefundCredit) &&
		(p.Code == problem.CodeAccountNotFound || p.Status == http.StatusUnprocessableEntity)
}

// TransientStatus reports whether an answer with status is about the command service's state rather than
// the request (unreachable behind a proxy, overloaded, its database unavailable), and so worth retrying
// as it is, without counting against the step.
func TransientStatus(status int) bool {
	switch status {
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout, http.StatusTooManyRequests:
		return true
	}
	return false
}
