package domain

import (
	"errors"
	"fmt"
	"time"

	"upi/shared/contract/events"
)

// Refusals of a complaint.
var (
	ErrComplaintExists       = errors.New("the payment has an open complaint")
	ErrComplaintNotFound     = errors.New("complaint not found")
	ErrComplaintWindowClosed = errors.New("the payment is older than the complaint window")
	// ErrComplaintPending: the complaint's answer is not in the log yet (its payment is in flight).
	ErrComplaintPending = errors.New("the payment has not ended yet")
)

// Complaints is the state of one payment's complaint stream: the open complaint, if any.
type Complaints struct {
	Open   *events.ComplaintRaisedV1
	Raised int
}

// Evolve folds one event of the complaint stream.
func (c Complaints) Evolve(e events.Payload) (Complaints, error) {
	switch e := e.(type) {
	case events.ComplaintRaisedV1:
		if c.Open != nil {
			return c, fmt.Errorf("%w: complaint %s raised while %s is open", ErrCorruptStream, e.ComplaintID, c.Open.ComplaintID)
		}
		c.Open, c.Raised = &e, c.Raised+1
	case events.ComplaintResolvedV1:
		if c.Open == nil || c.Open.ComplaintID != e.ComplaintID {
			return c, fmt.Errorf("%w: complaint %s resolved but not open", ErrCorruptStream, e.ComplaintID)
		}
		c.Open = nil
	default:
		return c, fmt.Errorf("%w: %s on a complaint stream", ErrCorruptStream, e.EventType())
	}
	return c, nil
}

// PaymentHistory is what the log says of a payment: its initiation, and the event types standing in its
// debit, settle and close slots ("" for a slot not taken yet).
type PaymentHistory struct {
	Initiated           events.PaymentInitiatedV1
	InitiatedAt         time.Time
	Debit, Settle, Done string
}

// RaiseComplaint is a complaint the payer's owner raises.
type RaiseComplaint struct {
	ID, Reason, Description, Client string
	At                              time.Time
	Window, TAT                     time.Duration
}

// Raise opens a complaint and, when the payment's history answers it, resolves it at once (two events).
func (c Complaints) Raise(cmd RaiseComplaint, h PaymentHistory) ([]events.Payload, error) {
	if c.Open != nil {
		return nil, ErrComplaintExists
	}
	if cmd.At.Sub(h.InitiatedAt) > cmd.Window {
		return nil, ErrComplaintWindowClosed
	}
	p := h.Initiated
	raised := events.ComplaintRaisedV1{
		ComplaintTerms: events.ComplaintTerms{ComplaintID: cmd.ID, PaymentID: p.PaymentID, PayerVPA: p.PayerVPA,
			PayeeVPA: p.PayeeVPA, AmountPaise: p.AmountPaise, Reason: cmd.Reason},
		Description: cmd.Description, ClientID: cmd.Client, UPITxnID: p.UPITxnID,
	}
	resolved, err := Resolution(raised, h)
	switch {
	case err == nil:
		return []events.Payload{raised, resolved}, nil
	case !errors.Is(err, ErrComplaintPending):
		return nil, err
	case !events.ReasonFromLog(cmd.Reason) && h.Done == events.PaymentCompleted:
		// A dispute with the merchant: it has COMPLAINT_TAT to answer.
		raised.DueAt = events.Time(cmd.At.Add(cmd.TAT))
		return []events.Payload{raised}, nil
	case !events.ReasonFromLog(cmd.Reason):
		return nil, ErrPaymentNotCompleted // a dispute with the merchant needs a completed payment
	}
	return []events.Payload{raised}, nil // answered when the payment ends
}

// Resolution is the answer the payment's history gives a complaint, or ErrComplaintPending while it
// gives none: a failed payment was reversed (102) or never debited (144); a completed one credited its
// payee (107); a dispute about a completed payment to a person has no merchant to answer it.
func Resolution(raised events.ComplaintRaisedV1, h PaymentHistory) (events.ComplaintResolvedV1, error) {
	out := events.ComplaintResolvedV1{ComplaintTerms: raised.ComplaintTerms, Status: events.ComplaintStatusResolved, By: "SYSTEM"}
	switch {
	case h.Done == events.PaymentFailed && h.Settle == events.DebitReversed:
		out.Resolution = events.ResolutionReversed
	case h.Done == events.PaymentFailed:
		out.Resolution = events.ResolutionNotDebited
	case h.Done == events.PaymentCompleted && events.ReasonFromLog(raised.Reason):
		out.Resolution = events.ResolutionCredited
	case h.Done == events.PaymentCompleted && h.Initiated.PayeeType != events.AccountEntity:
		out.Status, out.Resolution = events.ComplaintStatusRejected, events.ResolutionNoMerchant
	default:
		return out, ErrComplaintPending
	}
	return out, nil
}
