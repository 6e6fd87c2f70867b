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
	return eventstore.Aggregate[domain.Refund]{Type: events.AggregateRefund, Evolve: evolvePayload(domain.Refund.Evolve)}
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
		return contract.Refund{}, false, fmt.Errorf("look up payment %s: %w", pid, err)
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
	// The reason names the payment's two people, like its note.
	reason, err := s.seal(ctx, cmd.Reason, initiated.PayerVPA, payee)
	if err != nil {
		return contract.Refund{}, false, err
	}
	op := clientOp(PaymentAggregate(), pid, id, clientMetadata(c, id.String(), fp),
		func(p domain.Payment, r eventstore.Reads) (events.Payload, error) {
			owner, err := ownerOf(r, payee)
			if err != nil {
				return nil, err
			}
			if owner != c.ClientID {
				return nil, fmt.Errorf("payment %s: the caller does not own its payee: %w", pid, domain.ErrPaymentNotFound)
			}
			return p.ReserveRefund(domain.RequestRefund{ID: id.String(), Amount: cmd.Amount,
				Reason: reason, Client: c.ClientID, UPITxnID: ids.UPITxnID(id), At: r.Now(), Window: s.refundWindow})
		})
	op.Origins = []string{payee}
	out, err := commitClientCommand[events.RefundReservedV1](ctx, s, op, fp, "request refund of payment "+pid)
	if err != nil {
		return contract.Refund{}, false, err
	}
	reserved, e := out.payload, out.event
	return contract.Refund{
		RefundID:    reserved.RefundID,
		PaymentID:   reserved.PaymentID,
		UPITxnID:    reserved.UPITxnID,
		AmountPaise: reserved.AmountPaise,
		Reason:      cmd.Reason, // the request's; the event's is sealed
		Status:      contract.PaymentPending,
		CreatedAt:   contract.Time(e.CreatedAt),
		UpdatedAt:   contract.Time(e.CreatedAt),
		Position:    e.Position.Token(),
	}, out.replayed, nil
}

// refundStepOp is the event-store op of one step of a refund's saga; account is the account of an account
// step (from the request, or the refund's opening).
func refundStepOp(c Caller, st contract.Step, account string, rrns *RRNLease) (*eventstore.Op, error) {
	rid := st.RefundID
	reservation := rid // the RefundReserved's event id is the refund id
	sg := refundSaga(rid)
	if party(st.Step) != "" && account == "" {
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
	case contract.StepRefundDebit, contract.StepRefundRejectDebit, contract.StepRefundCredit, contract.StepRefundReverse:
		return refundAccountStep(c, st, account, sg, moves[events.RefundTerms]{
			debit: func(a domain.Account, t events.RefundTerms, rrns *RRNLease, _ time.Time) (events.Payload, error) {
				return a.RefundDebit(t, rrns.Take)
			},
			rejectDebit: func(a domain.Account, t events.RefundTerms) (events.Payload, error) {
				return a.RefundRejectDebit(t, st.Code)
			},
			credit: func(a domain.Account, t events.RefundTerms) (events.Payload, error) { return a.RefundCredit(t) },
			reverse: func(a domain.Account, t events.RefundTerms, _ eventstore.Event) (events.Payload, error) {
				return a.RefundReverse(t, st.Code)
			},
			rrns: rrns,
		}), nil
	case contract.StepRefundComplete:
		return refundStep(c, st, sg.completeNeeds(),
			func(rf domain.Refund, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
				return complete(sg, rf, r)
			}), nil
	case contract.StepRefundFail:
		return refundStep(c, st, sg.failNeeds(),
			func(rf domain.Refund, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
				return fail(sg, st, rf, r)
			}), nil
	case contract.StepRefundRecord:
		closing := ids.StepEvent(rid, ids.StepClose)
		return slotOp(c, st, PaymentAggregate(), st.PaymentID.String(), []uuid.UUID{closing},
			func(p domain.Payment, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
				e, ok := r.Event(closing)
				var status, code string
				switch {
				case ok && e.Type == events.RefundCompleted:
					status = events.RefundStatusCompleted
				case ok && e.Type == events.RefundFailed:
					failed, err := decode[events.RefundFailedV1](e)
					if err != nil {
						return nil, uuid.Nil, err
					}
					status, code = events.RefundStatusFailed, failed.Code
				default:
					return nil, uuid.Nil, fmt.Errorf("%w: refund %s: close slot is %s", ErrStepPrecondition, rid, recorded(r, closing))
				}
				payload, err := p.SettleRefund(rid.String(), status, code)
				return payload, closing, err
			}), nil
	}
	return nil, fmt.Errorf("unknown refund step %q", st.Step)
}

// refundAccountStep is the op of a refund's step that moves money on account: it reads the refund's
// opening (RefundInitiated, by its step id), checks that account is the step's party, and decides.
func refundAccountStep(c Caller, st contract.Step, account string, sg saga, m moves[events.RefundTerms]) *eventstore.Op {
	open := ids.StepEvent(st.RefundID, ids.StepOpen)
	return moneyStep(c, st, account, sg, []uuid.UUID{open},
		func(r eventstore.Reads) (events.RefundTerms, uuid.UUID, error) {
			e, ok := r.Event(open)
			if !ok || e.Type != events.RefundInitiated {
				return events.RefundTerms{}, uuid.Nil, fmt.Errorf("%w: refund %s is not open", ErrStepPrecondition, st.RefundID)
			}
			opened, err := decode[events.RefundInitiatedV1](e)
			if err != nil {
				return events.RefundTerms{}, uuid.Nil, err
			}
			t := opened.RefundTerms
			return t, open, checkParty(st.Step, account, t.PayerVPA, t.PayeeVPA, "refund "+st.RefundID.String())
		}, m)
}

// refundStep is the op of a step on the refund's own stream.
func refundStep(c Caller, st contract.Step, needs []uuid.UUID, decide stepDecision[domain.Refund]) *eventstore.Op {
	return slotOp(c, st, RefundAggregate(), st.RefundID.String(), needs,
		func(rf domain.Refund, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
			if st.Step != contract.StepRefundOpen && !rf.Initiated() {
				return nil, uuid.Nil, fmt.Errorf("refund %s: %w", st.RefundID, domain.ErrRefundNotFound)
			}
			return decide(rf, r)
		})
}
