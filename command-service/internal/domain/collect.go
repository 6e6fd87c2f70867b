package domain

import (
	"errors"
	"fmt"
	"time"

	"upi/shared/contract/events"
	"upi/shared/contract/money"
	"upi/shared/contract/vpa"
)

// Refusals of a collect request.
var (
	ErrCollectNotAllowed = errors.New("only an ENTITY may request money from a payer")
	ErrCollectNotFound   = errors.New("collect request not found")
	ErrCollectExpired    = errors.New("the collect request has expired")
	ErrCollectDeclined   = errors.New("the collect request was declined")
	ErrCollectApproved   = errors.New("the collect request was approved")
	ErrCollectNotDue     = errors.New("the collect request is not due to expire")
)

// Collect request statuses; the zero status is a request never made.
const (
	CollectPending  = "PENDING"
	CollectApproved = "APPROVED"
	CollectDeclined = "DECLINED"
	CollectExpired  = "EXPIRED"
)

// Collect is the state of one collect request's stream (keyed by the collect id).
type Collect struct {
	events.CollectTerms
	Client    string
	ExpiresAt time.Time
	Status    string
	PaymentID string
}

// Requested reports whether the request exists.
func (c Collect) Requested() bool { return c.Status != "" }

// Evolve folds one event of the collect request's stream.
func (c Collect) Evolve(e events.Payload) (Collect, error) {
	switch e := e.(type) {
	case events.CollectRequestedV1:
		if c.Requested() {
			return c, fmt.Errorf("%w: collect %s requested twice", ErrCorruptStream, e.CollectID)
		}
		at, err := time.Parse(time.RFC3339Nano, e.ExpiresAt)
		if err != nil {
			return c, fmt.Errorf("%w: collect %s: expires_at %q", ErrCorruptStream, e.CollectID, e.ExpiresAt)
		}
		return Collect{CollectTerms: e.CollectTerms, Client: e.ClientID, ExpiresAt: at, Status: CollectPending}, nil
	case events.CollectApprovedV1:
		if c.Status != CollectPending {
			return c, fmt.Errorf("%w: CollectApproved on a %q collect", ErrCorruptStream, c.Status)
		}
		c.Status, c.PaymentID = CollectApproved, e.PaymentID
	case events.CollectDeclinedV1:
		if c.Status != CollectPending {
			return c, fmt.Errorf("%w: CollectDeclined on a %q collect", ErrCorruptStream, c.Status)
		}
		c.Status = CollectDeclined
	case events.CollectExpiredV1:
		if c.Status != CollectPending {
			return c, fmt.Errorf("%w: CollectExpired on a %q collect", ErrCorruptStream, c.Status)
		}
		c.Status = CollectExpired
	default:
		return c, fmt.Errorf("%w: %s on a collect request", ErrCorruptStream, e.EventType())
	}
	return c, nil
}

// RequestCollect is the command to ask a payer for money. The caller has checked that the client owns
// the payee and that the payer exists; PayeeType is the payee's kind, from its opening.
type RequestCollect struct {
	ID        string
	Payee     vpa.VPA
	Payer     vpa.VPA
	PayeeType string
	Amount    money.Amount
	Note      string
	Client    string
	ExpiresAt time.Time
}

// Request opens the collect request.
func (c Collect) Request(cmd RequestCollect) (events.CollectRequestedV1, error) {
	switch {
	case c.Requested():
		return events.CollectRequestedV1{}, fmt.Errorf("%w: collect %s requested twice", ErrCorruptStream, cmd.ID)
	case cmd.PayeeType != events.AccountEntity:
		return events.CollectRequestedV1{}, ErrCollectNotAllowed
	case cmd.Amount.IsZero():
		return events.CollectRequestedV1{}, ErrInvalidAmount
	case cmd.Payer == cmd.Payee:
		return events.CollectRequestedV1{}, fmt.Errorf("%w: payer and payee are both %s", ErrWrongAccount, cmd.Payer)
	}
	return events.CollectRequestedV1{CollectTerms: events.CollectTerms{CollectID: cmd.ID, PayeeVPA: cmd.Payee.String(),
		PayerVPA: cmd.Payer.String(), AmountPaise: int64(cmd.Amount.Paise())}, Note: cmd.Note, ClientID: cmd.Client,
		ExpiresAt: events.Time(cmd.ExpiresAt)}, nil
}

// pending refuses a decision on a request that is closed, or pending past its expiry (its CollectExpired
// may not be appended yet: the request is expired all the same).
func (c Collect) pending(now time.Time) error {
	switch c.Status {
	case "":
		return ErrCollectNotFound
	case CollectApproved:
		return ErrCollectApproved
	case CollectDeclined:
		return ErrCollectDeclined
	case CollectExpired:
		return ErrCollectExpired
	}
	if !now.Before(c.ExpiresAt) {
		return ErrCollectExpired
	}
	return nil
}

// Approve records the payer's approval of a pending request, naming the payment it starts.
func (c Collect) Approve(paymentID, client string, now time.Time) (events.CollectApprovedV1, error) {
	if err := c.pending(now); err != nil {
		return events.CollectApprovedV1{}, err
	}
	return events.CollectApprovedV1{CollectTerms: c.CollectTerms, PaymentID: paymentID, ClientID: client}, nil
}

// Decline records the payer's refusal of a pending request.
func (c Collect) Decline(client string, now time.Time) (events.CollectDeclinedV1, error) {
	if err := c.pending(now); err != nil {
		return events.CollectDeclinedV1{}, err
	}
	return events.CollectDeclinedV1{CollectTerms: c.CollectTerms, ClientID: client}, nil
}

// Expire ends a request still pending at its expiry.
func (c Collect) Expire(now time.Time) (events.CollectExpiredV1, error) {
	if !c.Requested() {
		return events.CollectExpiredV1{}, ErrCollectNotFound
	}
	if c.Status != CollectPending {
		return events.CollectExpiredV1{}, c.pending(now)
	}
	if now.Before(c.ExpiresAt) {
		return events.CollectExpiredV1{}, ErrCollectNotDue
	}
	return events.CollectExpiredV1{CollectTerms: c.CollectTerms, ExpiresAt: events.Time(c.ExpiresAt)}, nil
}
