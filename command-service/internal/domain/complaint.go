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
	// ErrComplaintClosed: the complaint was answered already (accepted, rejected, charged back or
	// resolved from the log).
	ErrComplaintClosed = errors.New("the complaint is closed")
	// ErrComplaintTATPassed: the merchant's time to answer (COMPLAINT_TAT) has passed.
	ErrComplaintTATPassed = errors.New("the merchant's time to answer the complaint has passed")
	// ErrComplaintNotDispute: the complaint is answered from the log, not by the merchant.
	ErrComplaintNotDispute = errors.New("the complaint is not a dispute for the merchant")
	// ErrComplaintNotDue: the chargeback of a dispute still within COMPLAINT_TAT.
	ErrComplaintNotDue = errors.New("the dispute is within the merchant's time to answer")
)

// Complaints is the state of one payment's complaint stream: the open complaint, if any, and the
// merchants' answers to its disputes.
type Complaints struct {
	Open   *events.ComplaintRaisedV1
	Raised int
	// Answers are the disputes the merchant accepted or rejected, or that were charged back, by complaint
	// id. The map is shared with earlier states (the event store caches them): copied, never written in
	// place.
	Answers map[string]Answer `json:",omitempty"`
}

// Answer is how a dispute was answered: ComplaintAccepted, ChargebackRaised or ComplaintResolved (a
// rejection), by whom, and the settlement's latest refund attempt (none for a rejection, or when nothing
// was left to refund).
type Answer struct {
	Type     string
	Terms    events.ComplaintTerms
	RefundID string
	Attempt  int
	Amount   int64
}

// Chargeback reports whether the answer is a chargeback's.
func (a Answer) Chargeback() bool { return a.Type == events.ChargebackRaised }

func (c Complaints) answered(id string, a Answer) Complaints {
	answers := make(map[string]Answer, len(c.Answers)+1)
	for k, v := range c.Answers {
		answers[k] = v
	}
	answers[id] = a
	c.Answers = answers
	return c
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
		if e.Status == events.ComplaintStatusRejected && e.Resolution == events.ResolutionMerchantRejected {
			c = c.answered(e.ComplaintID, Answer{Type: events.ComplaintResolved, Terms: e.ComplaintTerms})
		}
	case events.ComplaintAcceptedV1:
		return c.settled(e.ComplaintSettlementV1, Answer{Type: events.ComplaintAccepted})
	case events.ChargebackRaisedV1:
		return c.settled(e.ComplaintSettlementV1, Answer{Type: events.ChargebackRaised})
	case events.ComplaintRefundRetriedV1:
		a, ok := c.Answers[e.ComplaintID]
		if !ok || a.RefundID == "" || a.Attempt+1 != e.Attempt {
			return c, fmt.Errorf("%w: complaint %s: refund attempt %d out of turn", ErrCorruptStream, e.ComplaintID, e.Attempt)
		}
		a.RefundID, a.Attempt, a.Amount = e.RefundID, e.Attempt, e.RefundAmountPaise
		c = c.answered(e.ComplaintID, a)
	default:
		return c, fmt.Errorf("%w: %s on a complaint stream", ErrCorruptStream, e.EventType())
	}
	return c, nil
}

// settled records a dispute's settlement (accept or chargeback) of the open complaint.
func (c Complaints) settled(e events.ComplaintSettlementV1, a Answer) (Complaints, error) {
	if c.Open == nil || c.Open.ComplaintID != e.ComplaintID {
		return c, fmt.Errorf("%w: complaint %s settled but not open", ErrCorruptStream, e.ComplaintID)
	}
	if _, dup := c.Answers[e.ComplaintID]; dup {
		return c, fmt.Errorf("%w: complaint %s settled twice", ErrCorruptStream, e.ComplaintID)
	}
	a.Terms, a.RefundID, a.Attempt, a.Amount = e.ComplaintTerms, e.RefundID, e.Attempt, e.RefundAmountPaise
	return c.answered(e.ComplaintID, a), nil
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

// MerchantAnswer is the merchant's answer to dispute ID at At: an accept (Reject false; Note optional)
// or a rejection with its reason in Note.
type MerchantAnswer struct {
	ID, Client, Note string
	Reject           bool
	At               time.Time
}

// Refunding is the refund a settlement reserved on the payment, if any: its id and amount.
type Refunding struct {
	ID     string
	Amount int64
}

// dispute is the open dispute id, or the refusal of an answer to it.
func (c Complaints) dispute(id string, at time.Time) (*events.ComplaintRaisedV1, error) {
	open := c.Open
	if open == nil || open.ComplaintID != id {
		return nil, ErrComplaintClosed
	}
	if open.DueAt == "" {
		return nil, ErrComplaintNotDispute
	}
	due, err := time.Parse(time.RFC3339Nano, open.DueAt)
	if err != nil {
		return nil, fmt.Errorf("%w: complaint %s due at %q: %w", ErrCorruptStream, id, open.DueAt, err)
	}
	if !at.Before(due) {
		return nil, ErrComplaintTATPassed
	}
	return open, nil
}

// Answer decides the merchant's answer: an accept is ComplaintAccepted (with the refund the same commit
// reserved, if anything was left to refund) and the resolution RET; a rejection is resolution
// MERCHANT_REJECTED with the reason as its note. Answering again as answered before replays it (nil
// events, nil error); any other answer to a closed dispute is refused, and after due_at every answer is.
func (c Complaints) Answer(cmd MerchantAnswer, refund Refunding) ([]events.Payload, error) {
	if a, ok := c.Answers[cmd.ID]; ok && a.Type != events.ChargebackRaised && (a.Type == events.ComplaintAccepted) == !cmd.Reject {
		return nil, nil // answered so before
	}
	open, err := c.dispute(cmd.ID, cmd.At)
	if err != nil {
		if a, ok := c.Answers[cmd.ID]; ok && a.Type == events.ChargebackRaised {
			return nil, ErrComplaintTATPassed
		}
		return nil, err
	}
	resolved := events.ComplaintResolvedV1{ComplaintTerms: open.ComplaintTerms, By: events.ResolutionByMerchant}
	if cmd.Reject {
		resolved.Status, resolved.Resolution, resolved.Note = events.ComplaintStatusRejected, events.ResolutionMerchantRejected, cmd.Note
		return []events.Payload{resolved}, nil
	}
	resolved.Status, resolved.Resolution, resolved.Note = events.ComplaintStatusResolved, events.ResolutionReturned, cmd.Note
	accepted := events.ComplaintAcceptedV1{ComplaintSettlementV1: settlement(open.ComplaintTerms, refund),
		ClientID: cmd.Client, Note: cmd.Note}
	return []events.Payload{accepted, resolved}, nil
}

// Chargeback decides the chargeback of dispute id, unanswered past its due_at: ChargebackRaised (with
// the refund the same commit reserved, if anything was left to refund) and the resolution CHARGEBACK. A
// dispute charged back already replays (nil events, nil error).
func (c Complaints) Chargeback(id string, at time.Time, refund Refunding) ([]events.Payload, error) {
	if a, ok := c.Answers[id]; ok {
		if a.Type == events.ChargebackRaised {
			return nil, nil
		}
		return nil, ErrComplaintClosed
	}
	_, err := c.dispute(id, at)
	switch {
	case err == nil:
		return nil, ErrComplaintNotDue
	case !errors.Is(err, ErrComplaintTATPassed):
		return nil, err
	}
	open := c.Open
	resolved := events.ComplaintResolvedV1{ComplaintTerms: open.ComplaintTerms, Status: events.ComplaintStatusResolved,
		Resolution: events.ResolutionChargeback, By: "SYSTEM"}
	return []events.Payload{events.ChargebackRaisedV1{ComplaintSettlementV1: settlement(open.ComplaintTerms, refund)}, resolved}, nil
}

// Retry decides a new attempt at the refund of dispute id's settlement, whose latest attempt, failed,
// failed: ComplaintRefundRetried with the refund the same commit reserved.
func (c Complaints) Retry(id, failed string, refund Refunding) (events.ComplaintRefundRetriedV1, error) {
	a, ok := c.Answers[id]
	if !ok || a.RefundID == "" {
		return events.ComplaintRefundRetriedV1{}, ErrComplaintNotFound
	}
	if a.RefundID != failed {
		return events.ComplaintRefundRetriedV1{}, fmt.Errorf("%w: complaint %s is at refund %s, not %s", ErrComplaintClosed, id, a.RefundID, failed)
	}
	if refund.ID == "" {
		return events.ComplaintRefundRetriedV1{}, ErrRefundExceeds
	}
	s := settlement(a.Terms, refund)
	s.Attempt = a.Attempt + 1
	return events.ComplaintRefundRetriedV1{ComplaintSettlementV1: s, Chargeback: a.Chargeback()}, nil
}

func settlement(t events.ComplaintTerms, refund Refunding) events.ComplaintSettlementV1 {
	s := events.ComplaintSettlementV1{ComplaintTerms: t, RefundID: refund.ID, RefundAmountPaise: refund.Amount}
	if refund.ID != "" {
		s.Attempt = 1
	}
	return s
}

// DisputedAmount is what a dispute's settlement refunds: the payment's amount less what was refunded or
// is being refunded.
func (p Payment) DisputedAmount() int64 {
	return int64(p.Amount - p.RefundedPaise - p.pendingRefunds())
}
