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
		return nil, failure("look up payments of steps", err)
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
		return nil, failure("apply steps", err)
	}
	for j, r := range results {
		i := index[j]
		if r.Err != nil {
			out[i] = StepOutcome{Err: failure(fmt.Sprintf("%s of %s", steps[i].Step, steps[i].Key()), r.Err)}
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
		if st.Account == "" && (party(st.Step) != "" || refundParty(st.Step) != "") {
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
		if st.Account != "" {
			continue
		}
		if refundParty(st.Step) != "" {
			account, err := refundAccount(found, st)
			if err != nil {
				return nil, err
			}
			out[st] = account
			continue
		}
		e, ok := found[st.PaymentID.String()]
		if !ok {
			continue
		}
		p, err := decode[events.PaymentInitiatedV1](e)
		if err != nil {
			return nil, err
		}
		switch {
		case party(st.Step) == partyPayer:
			out[st] = p.PayerVPA
		case party(st.Step) == partyPayee:
			out[st] = p.PayeeVPA
		}
	}
	return out, nil
}

const (
	partyPayer = "payer"
	partyPayee = "payee"
)

// party is the side of the payment whose account a step moves money on, or "" for the payment's own steps.
func party(step contract.StepName) string {
	switch step {
	case contract.StepDebit, contract.StepRejectDebit, contract.StepReverse:
		return partyPayer
	case contract.StepCredit:
		return partyPayee
	}
	return ""
}

// partyVPA is the account of p that step moves money on.
func partyVPA(p domain.Payment, step contract.StepName) string {
	if party(step) == partyPayee {
		return p.Payee
	}
	return p.Payer
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
	debit, settle := ids.StepEvent(pid, ids.StepDebit), ids.StepEvent(pid, ids.StepSettle)
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
				tail, ok := r.Drawn()
				if !ok {
					return nil, uuid.Nil, fmt.Errorf("payment %s: no rrn drawn for its debit", pid)
				}
				payload, err := a.Debit(p, domain.DebitTerms{At: r.Now(), Limits: limits, RRN: domain.RRN(r.Now(), tail)})
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
	case contract.StepCredit:
		return accountStep(c, st, account, []uuid.UUID{debit},
			func(a domain.Account, p domain.Payment, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
				if err := require(r, pid, ids.StepDebit, debit, events.AccountDebited); err != nil {
					return nil, uuid.Nil, err
				}
				payload, err := a.Credit(p)
				return payload, debit, err
			}), nil
	case contract.StepReverse:
		return accountStep(c, st, account, []uuid.UUID{debit},
			func(a domain.Account, p domain.Payment, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
				if err := require(r, pid, ids.StepDebit, debit, events.AccountDebited); err != nil {
					return nil, uuid.Nil, err
				}
				debited, _ := r.Event(debit)
				payload, err := a.Reverse(p, st.Code, debited.CreatedAt)
				return payload, debit, err
			}), nil
	case contract.StepComplete:
		return paymentStep(c, st, []uuid.UUID{settle},
			func(p domain.Payment, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
				if err := require(r, pid, ids.StepSettle, settle, events.AccountCredited); err != nil {
					return nil, uuid.Nil, err
				}
				payload, err := p.Complete()
				return payload, settle, err
			}), nil
	case contract.StepFail:
		return paymentStep(c, st, []uuid.UUID{debit, settle},
			func(p domain.Payment, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
				cause, err := failCause(r, "payment", pid, debit, settle, events.DebitRejected, events.DebitReversed)
				if err != nil {
					return nil, uuid.Nil, err
				}
				payload, err := p.Fail(st.Code, st.Reason)
				return payload, cause, err
			}), nil
	}
	return nil, fmt.Errorf("unknown step %q", st.Step)
}

// accountDecision decides a step on an account given its payment; it returns the new event's payload and
// the event that met the step's precondition (its cause, unless the caller named one; uuid.Nil for the
// PaymentInitiated).
type accountDecision func(a domain.Account, p domain.Payment, r eventstore.Reads) (events.Payload, uuid.UUID, error)

// accountStep is the op of a step that moves money on account: it reads the payment's PaymentInitiated
// (whose event id is the payment id) and needs, checks that account is the step's party to the payment,
// and decides.
func accountStep(c Caller, st contract.Step, account string, needs []uuid.UUID, decide accountDecision) *eventstore.Op {
	id := slotOf(st)
	op := eventstore.NewOp(AccountAggregate(), account,
		func(a domain.Account, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
			p, opening, err := initiated(r, st.PaymentID)
			if err != nil {
				return nil, err
			}
			if want := partyVPA(p, st.Step); account != want {
				return nil, fmt.Errorf("%w: %s is not the %s of payment %s", domain.ErrWrongAccount, account, party(st.Step), p.ID)
			}
			payload, cause, err := decide(a, p, r)
			if err != nil {
				return nil, err
			}
			if cause == uuid.Nil {
				cause = opening
			}
			return newEvent(id, payload, stepMetadata(c, st, cause)), nil
		})
	op.Dedupe = id
	op.Needs = needs
	op.Origins = []string{st.PaymentID.String()}
	return op
}

// paymentDecision decides a step on the payment's own stream, like accountDecision.
type paymentDecision func(p domain.Payment, r eventstore.Reads) (events.Payload, uuid.UUID, error)

// paymentStep is the op of a step that ends a payment, on the payment's stream.
func paymentStep(c Caller, st contract.Step, needs []uuid.UUID, decide paymentDecision) *eventstore.Op {
	id := slotOf(st)
	op := eventstore.NewOp(PaymentAggregate(), st.PaymentID.String(),
		func(p domain.Payment, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
			if !p.Initiated() {
				return nil, fmt.Errorf("payment %s: %w", st.PaymentID, domain.ErrPaymentNotFound)
			}
			payload, cause, err := decide(p, r)
			if err != nil {
				return nil, err
			}
			return newEvent(id, payload, stepMetadata(c, st, cause)), nil
		})
	op.Dedupe = id
	op.Needs = needs
	return op
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

// failCause is the event that lets a saga fail with no money moved: its debit slot's rejection, or its
// settle slot's reversal; otherwise money may have moved and failing is refused (ErrStepPrecondition).
func failCause(r eventstore.Reads, saga string, id, debit, settle uuid.UUID, rejected, reversed string) (uuid.UUID, error) {
	switch {
	case recorded(r, debit) == rejected:
		return debit, nil
	case recorded(r, settle) == reversed:
		return settle, nil
	}
	return uuid.Nil, fmt.Errorf("%w: %s %s: no money may have moved (debit slot: %s, settle slot: %s)",
		ErrStepPrecondition, saga, id, recorded(r, debit), recorded(r, settle))
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
	causation := st.CausationID
	if causation == "" {
		causation = cause.String()
	}
	tp := st.TraceParent
	if tp == "" {
		tp = c.TraceParent
	}
	return events.Metadata{SchemaVersion: events.SchemaVersion, CorrelationID: st.Key().String(),
		CausationID: causation, RequestID: c.RequestID, ClientID: c.ClientID, TraceParent: tp}
}
