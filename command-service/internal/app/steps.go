package app

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"upi/command-service/internal/domain"
	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/ids"
	"upi/shared/platform/eventstore"
)

// RRNSequence is the PostgreSQL sequence the tails of RRNs are drawn from (db/migrations).
const RRNSequence = "rrn_tail"

// StepOutcome is what happened to one workflow step: the event that stands in the log for it (just
// appended, or there already: Replayed, possibly the other branch's when two steps share a slot), or the
// error that failed this step alone.
type StepOutcome struct {
	Event    eventstore.Event
	Replayed bool
	Err      error
}

// Steps applies a batch of workflow steps in one group: one transaction in which every stream they touch
// is locked once (a merchant credited by a hundred payments takes its lock, reads its state and commits
// once), their preconditions are read in the same round trip, and their events are appended in one
// insert. A step that fails for its own reason (a precondition, a domain rule) fails alone. The error
// returned is the database's: nothing was applied, or a retry finds what was.
func (s *Service) Steps(ctx context.Context, c Caller, steps []contract.Step) ([]StepOutcome, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	out := make([]StepOutcome, len(steps))
	accounts, err := s.stepAccounts(ctx, steps)
	if err != nil {
		return nil, fmt.Errorf("look up payments of steps: %w", err)
	}
	ops := make([]*eventstore.Op, 0, len(steps))
	index := make([]int, 0, len(steps))
	for i, st := range steps {
		account := st.Account
		if account == "" {
			account = accounts[st]
		}
		var op *eventstore.Op
		var err error
		if st.Step.Refund() {
			op, err = refundStepOp(c, st, account)
		} else {
			op, err = stepOp(c, st, account, s.limits)
		}
		if err != nil {
			out[i] = StepOutcome{Err: err}
			continue
		}
		ops = append(ops, op)
		index = append(index, i)
	}
	results, err := s.store.ExecuteAll(ctx, ops)
	if err != nil {
		return nil, fmt.Errorf("apply steps: %w", err)
	}
	for j, r := range results {
		i := index[j]
		if r.Err != nil {
			out[i] = StepOutcome{Err: fmt.Errorf("%s of %s: %w", steps[i].Step, steps[i].Key(), r.Err)}
			continue
		}
		e := r.Result.Last()
		if want := slotOf(steps[i]); e == nil || e.ID != want {
			out[i] = StepOutcome{Err: fmt.Errorf("%s of %s: the store returned no event with the step's id",
				steps[i].Step, steps[i].Key())}
			continue
		}
		out[i] = StepOutcome{Event: *e, Replayed: r.Result.Replayed}
	}
	return out, nil
}

// stepAccounts finds the account of each account step that does not name it, from its payment's
// PaymentInitiated (or its refund's RefundInitiated): one round trip, only when a step needs it.
func (s *Service) stepAccounts(ctx context.Context, steps []contract.Step) (map[contract.Step]string, error) {
	var missing []string
	for _, st := range steps {
		if st.Account == "" && party(st.Step) != "" {
			missing = append(missing, st.Key().String())
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	found, err := s.store.Origins(ctx, missing...)
	if err != nil {
		return nil, err
	}
	out := make(map[contract.Step]string, len(missing))
	for _, st := range steps {
		if st.Account != "" || party(st.Step) == "" {
			continue
		}
		e, ok := found[st.Key().String()]
		if !ok {
			continue
		}
		payer, payee, err := sagaParties(st.Step, e)
		if err != nil {
			return nil, err
		}
		out[st] = partyVPA(st.Step, payer, payee)
	}
	return out, nil
}

// sagaParties are the payer and payee of the payment a step's saga is about, from the saga's opening: the
// payment's PaymentInitiated, or the refund's RefundInitiated.
func sagaParties(step contract.StepName, opening eventstore.Event) (payer, payee string, err error) {
	if step.Refund() {
		opened, err := decode[events.RefundInitiatedV1](opening)
		return opened.PayerVPA, opened.PayeeVPA, err
	}
	initiated, err := decode[events.PaymentInitiatedV1](opening)
	return initiated.PayerVPA, initiated.PayeeVPA, err
}

const (
	partyPayer = "payer"
	partyPayee = "payee"
)

// party is the side of the payment whose account a step moves money on, or "" for the steps on a
// payment's or a refund's own stream. A refund is a payment in reverse: the payee gives the money back,
// the payer receives it.
func party(step contract.StepName) string {
	switch step {
	case contract.StepDebit, contract.StepRejectDebit, contract.StepReverse, contract.StepRefundCredit:
		return partyPayer
	case contract.StepCredit, contract.StepRefundDebit, contract.StepRefundRejectDebit, contract.StepRefundReverse:
		return partyPayee
	}
	return ""
}

// partyVPA is the account, of the payment's payer and payee, that step moves money on.
func partyVPA(step contract.StepName, payer, payee string) string {
	if party(step) == partyPayee {
		return payee
	}
	return payer
}

// checkParty fails with domain.ErrWrongAccount unless account is the one step moves money on, of the
// payment's payer and payee; saga names the payment or refund in the error.
func checkParty(step contract.StepName, account, payer, payee, saga string) error {
	if account != partyVPA(step, payer, payee) {
		return fmt.Errorf("%w: %s is not the %s of %s", domain.ErrWrongAccount, account, party(step), saga)
	}
	return nil
}

// slot is the workflow slot a step fills: debit and reject-debit the debit, credit and reverse the
// settlement, complete and fail the close (and likewise for a refund's, which also has its open and record
// slots). Each slot has one event id, so two outcomes of one slot can
// never both be recorded.
func slot(step contract.StepName) string {
	switch step {
	case contract.StepDebit, contract.StepRejectDebit, contract.StepRefundDebit, contract.StepRefundRejectDebit:
		return ids.StepDebit
	case contract.StepCredit, contract.StepReverse, contract.StepRefundCredit, contract.StepRefundReverse:
		return ids.StepSettle
	case contract.StepRefundOpen:
		return ids.StepOpen
	case contract.StepRefundRecord:
		return ids.StepRecord
	}
	return ids.StepClose
}

func slotOf(st contract.Step) uuid.UUID { return ids.StepEvent(st.Key(), slot(st.Step)) }

// stepOp is the event-store op of one step: on which stream it appends, what it reads, how it decides.
// account is the account of an account step (from the request, or its payment).
func stepOp(c Caller, st contract.Step, account string, limits domain.Limits) (*eventstore.Op, error) {
	pid := st.PaymentID
	sg := paymentSaga(pid)
	if party(st.Step) != "" && account == "" {
		return nil, fmt.Errorf("payment %s: %w", pid, domain.ErrPaymentNotFound)
	}
	switch st.Step {
	case contract.StepDebit:
		// A payment can only have ended once its debit slot is filled (fail needs a rejected debit, or a
		// reversal of one; complete a credit after one), and a filled slot answers the debit as a replay:
		// so a debit never needs to look at the close slot.
		// The debit gives the payment its RRN, whose tail it draws from a sequence in the group's first
		// round trip; it is checked against the payer's limits at the group's transaction time.
		op := accountStep(c, st, account, nil,
			func(a domain.Account, p domain.Payment, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
				rrn, err := sg.rrn(r)
				if err != nil {
					return nil, uuid.Nil, err
				}
				payload, err := a.Debit(p, domain.DebitTerms{At: r.Now(), Limits: limits, RRN: rrn})
				return payload, uuid.Nil, err
			})
		op.Draw = RRNSequence
		return op, nil
	case contract.StepRejectDebit:
		return accountStep(c, st, account, nil,
			func(a domain.Account, p domain.Payment, _ eventstore.Reads) (events.Payload, uuid.UUID, error) {
				payload, err := a.RejectDebit(p, st.Code)
				return payload, uuid.Nil, err
			}), nil
	case contract.StepCredit, contract.StepReverse:
		return accountStep(c, st, account, []uuid.UUID{sg.debit},
			func(a domain.Account, p domain.Payment, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
				if err := sg.requireDebited(r); err != nil {
					return nil, uuid.Nil, err
				}
				if st.Step == contract.StepCredit {
					payload, err := a.Credit(p)
					return payload, sg.debit, err
				}
				debited, _ := r.Event(sg.debit)
				payload, err := a.Reverse(p, st.Code, debited.CreatedAt)
				return payload, sg.debit, err
			}), nil
	case contract.StepComplete:
		return paymentStep(c, st, sg.completeNeeds(),
			func(p domain.Payment, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
				return complete(sg, p, r)
			}), nil
	case contract.StepFail:
		return paymentStep(c, st, sg.failNeeds(),
			func(p domain.Payment, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
				return fail(sg, st, p, r)
			}), nil
	}
	return nil, fmt.Errorf("unknown step %q", st.Step)
}

// stepDecision decides a step on the state S of the stream it appends to; it returns the new event's
// payload and the event that met the step's precondition (its cause, unless the caller named one).
type stepDecision[S any] func(state S, r eventstore.Reads) (events.Payload, uuid.UUID, error)

// slotOp is the op of a step that appends on stream the event that fills the step's slot: deduplicated on
// the slot's id, with the step's metadata (stepMetadata) caused by the event decide names.
func slotOp[S any](c Caller, st contract.Step, agg eventstore.Aggregate[S], stream string, needs []uuid.UUID,
	decide stepDecision[S]) *eventstore.Op {
	op := eventOp(agg, stream, slotOf(st), func(state S, r eventstore.Reads) (events.Payload, events.Metadata, error) {
		payload, cause, err := decide(state, r)
		return payload, stepMetadata(c, st, cause), err
	})
	op.Needs = needs
	return op
}

// moneyStep is the op of a step that moves money on account, for a saga whose terms T (the payment, or
// the refund's terms) terms reads along with the event that set them, and checks account against. That
// event is the step's cause unless decide names another.
func moneyStep[T any](c Caller, st contract.Step, account string, needs []uuid.UUID,
	terms func(r eventstore.Reads) (T, uuid.UUID, error),
	decide func(a domain.Account, t T, r eventstore.Reads) (events.Payload, uuid.UUID, error)) *eventstore.Op {
	return slotOp(c, st, AccountAggregate(), account, needs,
		func(a domain.Account, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
			t, opening, err := terms(r)
			if err != nil {
				return nil, uuid.Nil, err
			}
			payload, cause, err := decide(a, t, r)
			if cause == uuid.Nil {
				cause = opening
			}
			return payload, cause, err
		})
}

// accountDecision decides a step on an account given its payment, like a stepDecision; uuid.Nil for its
// cause means the PaymentInitiated.
type accountDecision func(a domain.Account, p domain.Payment, r eventstore.Reads) (events.Payload, uuid.UUID, error)

// accountStep is the op of a step that moves money on account: it reads the payment's PaymentInitiated
// (whose event id is the payment id) and needs, checks that account is the step's party to the payment,
// and decides.
func accountStep(c Caller, st contract.Step, account string, needs []uuid.UUID, decide accountDecision) *eventstore.Op {
	op := moneyStep(c, st, account, needs, func(r eventstore.Reads) (domain.Payment, uuid.UUID, error) {
		p, opening, err := initiated(r, st.PaymentID)
		if err != nil {
			return p, opening, err
		}
		return p, opening, checkParty(st.Step, account, p.Payer, p.Payee, "payment "+p.ID)
	}, decide)
	op.Origins = []string{st.PaymentID.String()}
	return op
}

// paymentStep is the op of a step that ends a payment, on the payment's stream.
func paymentStep(c Caller, st contract.Step, needs []uuid.UUID, decide stepDecision[domain.Payment]) *eventstore.Op {
	return slotOp(c, st, PaymentAggregate(), st.PaymentID.String(), needs,
		func(p domain.Payment, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
			if !p.Initiated() {
				return nil, uuid.Nil, fmt.Errorf("payment %s: %w", st.PaymentID, domain.ErrPaymentNotFound)
			}
			return decide(p, r)
		})
}

// initiated is the payment as its PaymentInitiated (the first event of its stream) left it, and that
// event's id.
func initiated(r eventstore.Reads, pid uuid.UUID) (domain.Payment, uuid.UUID, error) {
	e, found := r.Origin(pid.String())
	if !found || e.Type != events.PaymentInitiated {
		return domain.Payment{}, uuid.Nil, fmt.Errorf("payment %s: %w", pid, domain.ErrPaymentNotFound)
	}
	payload, err := decode[events.PaymentInitiatedV1](e)
	if err != nil {
		return domain.Payment{}, uuid.Nil, err
	}
	p, err := domain.Payment{}.Evolve(payload, e.CreatedAt)
	return p, e.ID, err
}

// require fails with ErrStepPrecondition unless the slot's recorded outcome is eventType.
func require(r eventstore.Reads, key uuid.UUID, slot string, id uuid.UUID, eventType string) error {
	if got := recorded(r, id); got != eventType {
		return fmt.Errorf("%w: %s: %s slot is %s, needs %s", ErrStepPrecondition, key, slot, got, eventType)
	}
	return nil
}

// recorded names the event type recorded with id, or "none".
func recorded(r eventstore.Reads, id uuid.UUID) string {
	if e, ok := r.Event(id); ok {
		return e.Type
	}
	return "none"
}

// stepMetadata is a step event's metadata: its causation is the event the caller names, or else the
// event that met the step's precondition (the PaymentInitiated, whose id is the payment id, for a debit).
// Its traceparent is the step's own span's, when the workflow names one, else the call's.
func stepMetadata(c Caller, st contract.Step, cause uuid.UUID) events.Metadata {
	meta := callerMetadata(c, st.Key().String())
	meta.CausationID = st.CausationID
	if meta.CausationID == "" {
		meta.CausationID = cause.String()
	}
	if st.TraceParent != "" {
		meta.TraceParent = st.TraceParent
	}
	return meta
}
