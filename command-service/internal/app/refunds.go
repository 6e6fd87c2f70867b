package app

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"upi/command-service/internal/domain"
	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/ids"
	"upi/shared/platform/eventstore"
)

// DefaultRefundWindow is how long after its initiation a payment may be refunded (REFUND_WINDOW).
const DefaultRefundWindow = 180 * 24 * time.Hour

// RefundsPath is the path of a refund of a payment: with the client and the key, it scopes the refund id.
func RefundsPath(paymentID uuid.UUID) string {
	return PathPayments + "/" + paymentID.String() + "/refunds"
}

// RefundAggregate is how the event store rebuilds a refund; its stream is a handful of events long.
func RefundAggregate() eventstore.Aggregate[domain.Refund] {
	return eventstore.Aggregate[domain.Refund]{
		Type: events.AggregateRefund,
		Evolve: func(r domain.Refund, e eventstore.Event) (domain.Refund, error) {
			p, err := events.Decode(e.Type, e.Payload)
			if err != nil {
				return r, err
			}
			return r.Evolve(p)
		},
	}
}

// RequestRefund reserves a refund on its payment's stream, under the payment's lock, so concurrent refunds
// can never together pass the payment's amount. The refund id is derived from the caller's idempotency
// key and is the RefundReserved's event id; the workflow then opens the refund's own stream and moves the
// money.
func (s *Service) RequestRefund(ctx context.Context, c Caller, cmd contract.RequestRefund) (contract.Refund, bool, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	pid := cmd.PaymentID.String()
	id := effectID(c, RefundsPath(cmd.PaymentID))
	fp := fingerprint(struct {
		Command     string `json:"command"`
		PaymentID   string `json:"payment_id"`
		AmountPaise int64  `json:"amount_paise"`
		Reason      string `json:"reason"`
	}{"request_refund", pid, int64(cmd.Amount.Paise()), cmd.Reason})
	// The payee (whose owner may refund) is known from the payment's opening; the payee's own opening is
	// then read in the op's round trip. Openings never change, so reading them before the lock is safe.
	origins, err := s.store.Origins(ctx, pid)
	if err != nil {
		return contract.Refund{}, false, failure("look up payment "+pid, err)
	}
	opening, found := origins[pid]
	if !found || opening.Type != events.PaymentInitiated {
		return contract.Refund{}, false, fmt.Errorf("payment %s: %w", pid, domain.ErrPaymentNotFound)
	}
	initiated, err := decode[events.PaymentInitiatedV1](opening)
	if err != nil {
		return contract.Refund{}, false, err
	}
	payee := initiated.PayeeVPA
	meta := clientMetadata(c, id.String(), fp)
	op := eventstore.NewOp(PaymentAggregate(), pid,
		func(p domain.Payment, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
			owner, err := ownerOf(r, payee)
			if err != nil {
				return nil, err
			}
			if owner != c.ClientID {
				return nil, fmt.Errorf("payment %s: the caller does not own its payee: %w", pid, domain.ErrPaymentNotFound)
			}
			reserved, err := p.ReserveRefund(domain.RequestRefund{ID: id.String(), Amount: cmd.Amount,
				Reason: cmd.Reason, Client: c.ClientID, UPITxnID: ids.UPITxnID(id), At: r.Now(), Window: s.refundWindow})
			if err != nil {
				return nil, err
			}
			return newEvent(id, reserved, meta), nil
		})
	op.Dedupe = id
	op.Origins = []string{payee}
	res, err := s.commit.Execute(ctx, op)
	if err != nil {
		return contract.Refund{}, false, failure("request refund of payment "+pid, err)
	}
	e, err := original(res, id, events.RefundReserved, fp)
	if err != nil {
		return contract.Refund{}, false, err
	}
	reserved, err := decode[events.RefundReservedV1](e)
	if err != nil {
		return contract.Refund{}, false, err
	}
	return contract.Refund{
		RefundID:    reserved.RefundID,
		PaymentID:   reserved.PaymentID,
		UPITxnID:    reserved.UPITxnID,
		AmountPaise: reserved.AmountPaise,
		Reason:      reserved.Reason,
		Status:      contract.PaymentPending,
		CreatedAt:   contract.Time(e.CreatedAt),
		UpdatedAt:   contract.Time(e.CreatedAt),
		Position:    e.Position.Token(),
	}, res.Replayed, nil
}

// refundStepOp is the event-store op of one step of a refund's saga; account is the account of an account
// step (from the request, or the refund's opening).
func refundStepOp(c Caller, st contract.Step, account string) (*eventstore.Op, error) {
	rid := st.RefundID
	reservation := rid // the RefundReserved's event id is the refund id
	debit, settle, closing := ids.StepEvent(rid, ids.StepDebit), ids.StepEvent(rid, ids.StepSettle),
		ids.StepEvent(rid, ids.StepClose)
	if refundParty(st.Step) != "" && account == "" {
		return nil, fmt.Errorf("refund %s: %w", rid, domain.ErrRefundNotFound)
	}
	switch st.Step {
	case contract.StepRefundOpen:
		return refundStep(c, st, []uuid.UUID{reservation},
			func(rf domain.Refund, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
				e, ok := r.Event(reservation)
				if !ok || e.Type != events.RefundReserved {
					return nil, uuid.Nil, fmt.Errorf("refund %s: %w", rid, domain.ErrRefundNotFound)
				}
				reserved, err := decode[events.RefundReservedV1](e)
				if err != nil {
					return nil, uuid.Nil, err
				}
				if reserved.PaymentID != st.PaymentID.String() {
					return nil, uuid.Nil, fmt.Errorf("%w: refund %s is of payment %s", domain.ErrWrongAccount, rid, reserved.PaymentID)
				}
				payload, err := rf.Open(reserved)
				return payload, reservation, err
			}), nil
	case contract.StepRefundDebit:
		op := refundAccountStep(c, st, account, nil,
			func(a domain.Account, t events.RefundTerms, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
				tail, ok := r.Drawn()
				if !ok {
					return nil, uuid.Nil, fmt.Errorf("refund %s: no rrn drawn for its debit", rid)
				}
				payload, err := a.RefundDebit(t, domain.RRN(r.Now(), tail))
				return payload, uuid.Nil, err
			})
		op.Draw = RRNSequence
		return op, nil
	case contract.StepRefundRejectDebit:
		return refundAccountStep(c, st, account, nil,
			func(a domain.Account, t events.RefundTerms, _ eventstore.Reads) (events.Payload, uuid.UUID, error) {
				payload, err := a.RefundRejectDebit(t, st.Code)
				return payload, uuid.Nil, err
			}), nil
	case contract.StepRefundCredit, contract.StepRefundReverse:
		return refundAccountStep(c, st, account, []uuid.UUID{debit},
			func(a domain.Account, t events.RefundTerms, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
				if err := require(r, rid, ids.StepDebit, debit, events.RefundDebited); err != nil {
					return nil, uuid.Nil, err
				}
				if st.Step == contract.StepRefundCredit {
					payload, err := a.RefundCredit(t)
					return payload, debit, err
				}
				payload, err := a.RefundReverse(t, st.Code)
				return payload, debit, err
			}), nil
	case contract.StepRefundComplete:
		return refundStep(c, st, []uuid.UUID{settle},
			func(rf domain.Refund, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
				if err := require(r, rid, ids.StepSettle, settle, events.RefundCredited); err != nil {
					return nil, uuid.Nil, err
				}
				payload, err := rf.Complete()
				return payload, settle, err
			}), nil
	case contract.StepRefundFail:
		return refundStep(c, st, []uuid.UUID{debit, settle},
			func(rf domain.Refund, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
				cause, err := failCause(r, "refund", rid, debit, settle, events.RefundDebitRejected, events.RefundDebitReversed)
				if err != nil {
					return nil, uuid.Nil, err
				}
				payload, err := rf.Fail(st.Code, st.Reason)
				return payload, cause, err
			}), nil
	case contract.StepRefundRecord:
		id := slotOf(st)
		op := eventstore.NewOp(PaymentAggregate(), st.PaymentID.String(),
			func(p domain.Payment, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
				e, ok := r.Event(closing)
				var status, code string
				switch {
				case ok && e.Type == events.RefundCompleted:
					status = events.RefundStatusCompleted
				case ok && e.Type == events.RefundFailed:
					failed, err := decode[events.RefundFailedV1](e)
					if err != nil {
						return nil, err
					}
					status, code = events.RefundStatusFailed, failed.Code
				default:
					return nil, fmt.Errorf("%w: refund %s: close slot is %s", ErrStepPrecondition, rid, recorded(r, closing))
				}
				settled, err := p.SettleRefund(rid.String(), status, code)
				if err != nil {
					return nil, err
				}
				return newEvent(id, settled, stepMetadata(c, st, closing)), nil
			})
		op.Dedupe = id
		op.Needs = []uuid.UUID{closing}
		return op, nil
	}
	return nil, fmt.Errorf("unknown refund step %q", st.Step)
}

// refundParty is the side of the payment whose account a refund step moves money on: the payee gives the
// money back, the payer receives it; "" for the refund's and the payment's own steps.
func refundParty(step contract.StepName) string {
	switch step {
	case contract.StepRefundDebit, contract.StepRefundRejectDebit, contract.StepRefundReverse:
		return partyPayee
	case contract.StepRefundCredit:
		return partyPayer
	}
	return ""
}

// refundPartyVPA is the account of the refund that step moves money on.
func refundPartyVPA(t events.RefundTerms, step contract.StepName) string {
	if refundParty(step) == partyPayer {
		return t.PayerVPA
	}
	return t.PayeeVPA
}

type refundAccountDecision func(a domain.Account, t events.RefundTerms, r eventstore.Reads) (events.Payload, uuid.UUID, error)

// refundAccountStep is the op of a refund step that moves money on account: it reads the refund's opening
// (RefundInitiated, by its step id) and needs, checks that account is the step's party, and decides.
func refundAccountStep(c Caller, st contract.Step, account string, needs []uuid.UUID, decide refundAccountDecision) *eventstore.Op {
	id := slotOf(st)
	open := ids.StepEvent(st.RefundID, ids.StepOpen)
	op := eventstore.NewOp(AccountAggregate(), account,
		func(a domain.Account, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
			e, ok := r.Event(open)
			if !ok || e.Type != events.RefundInitiated {
				return nil, fmt.Errorf("%w: refund %s is not open", ErrStepPrecondition, st.RefundID)
			}
			opened, err := decode[events.RefundInitiatedV1](e)
			if err != nil {
				return nil, err
			}
			if want := refundPartyVPA(opened.RefundTerms, st.Step); account != want {
				return nil, fmt.Errorf("%w: %s is not the %s of refund %s", domain.ErrWrongAccount, account,
					refundParty(st.Step), st.RefundID)
			}
			payload, cause, err := decide(a, opened.RefundTerms, r)
			if err != nil {
				return nil, err
			}
			if cause == uuid.Nil {
				cause = open
			}
			return newEvent(id, payload, stepMetadata(c, st, cause)), nil
		})
	op.Dedupe = id
	op.Needs = append([]uuid.UUID{open}, needs...)
	return op
}

type refundDecision func(rf domain.Refund, r eventstore.Reads) (events.Payload, uuid.UUID, error)

// refundStep is the op of a step on the refund's own stream.
func refundStep(c Caller, st contract.Step, needs []uuid.UUID, decide refundDecision) *eventstore.Op {
	id := slotOf(st)
	op := eventstore.NewOp(RefundAggregate(), st.RefundID.String(),
		func(rf domain.Refund, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
			if st.Step != contract.StepRefundOpen && !rf.Initiated() {
				return nil, fmt.Errorf("refund %s: %w", st.RefundID, domain.ErrRefundNotFound)
			}
			payload, cause, err := decide(rf, r)
			if err != nil {
				return nil, err
			}
			return newEvent(id, payload, stepMetadata(c, st, cause)), nil
		})
	op.Dedupe = id
	op.Needs = needs
	return op
}

// refundAccount is the account of each refund step that moves money and does not name it, from its
// refund's opening.
func refundAccount(found map[string]eventstore.Event, st contract.Step) (string, error) {
	e, ok := found[st.RefundID.String()]
	if !ok {
		return "", nil
	}
	opened, err := decode[events.RefundInitiatedV1](e)
	if err != nil {
		return "", err
	}
	return refundPartyVPA(opened.RefundTerms, st.Step), nil
}
