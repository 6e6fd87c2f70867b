package app

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"upi/command-service/internal/domain"
	"upi/shared/events"
	"upi/shared/eventstore"
	"upi/shared/ids"
)

// Names of the workflow's step commands, as in their routes.
const (
	StepDebit       = "debit"
	StepCredit      = "credit"
	StepReverse     = "reverse"
	StepRejectDebit = "reject-debit"
	StepComplete    = "complete"
	StepFail        = "fail"
)

// StepCommand is one workflow step of a payment.
type StepCommand struct {
	PaymentID uuid.UUID
	Caller    Caller
	// CausationID is the event that made the workflow take this step, when the caller names it; else the
	// step's precondition event is recorded as its cause.
	CausationID string
	// Code and Reason are the failure code (reverse, reject-debit, fail) and reason (fail).
	Code   string
	Reason string
}

// StepOutcome is the event that stands in the log for a step: the one just appended, or the one that was
// there already (Replayed), possibly the other branch's when two steps share an event id.
type StepOutcome struct {
	PaymentID string
	Step      string
	EventType string
	EventID   string
	Position  string
	Replayed  bool
}

// Debit takes the amount from the payer, or records DebitRejected when the balance does not cover it.
func (s *Service) Debit(ctx context.Context, st StepCommand) (StepOutcome, error) {
	return s.step(ctx, st, StepDebit, ids.StepDebit, func(ctx context.Context, l paymentLog) (StepOutcome, error) {
		if l.payment.Terminal() {
			return StepOutcome{}, fmt.Errorf("%w: payment %s is %s", ErrStepPrecondition, st.PaymentID, l.payment.Status)
		}
		return appendStep(ctx, s, st, StepDebit, st.PaymentID, AccountAggregate(), l.payment.Payer, l.id(ids.StepDebit),
			func(a domain.Account) (events.Payload, error) { return a.Debit(l.payment) })
	})
}

// RejectDebit burns the debit step: once it is recorded, no later debit of the payment can move money.
func (s *Service) RejectDebit(ctx context.Context, st StepCommand) (StepOutcome, error) {
	return s.step(ctx, st, StepRejectDebit, ids.StepDebit, func(ctx context.Context, l paymentLog) (StepOutcome, error) {
		return appendStep(ctx, s, st, StepRejectDebit, st.PaymentID, AccountAggregate(), l.payment.Payer, l.id(ids.StepDebit),
			func(a domain.Account) (events.Payload, error) { return a.RejectDebit(l.payment, st.Code) })
	})
}

// Credit gives the amount to the payee, once the payer was debited. It shares its event id with Reverse,
// so at most one of the two ever happens.
func (s *Service) Credit(ctx context.Context, st StepCommand) (StepOutcome, error) {
	return s.step(ctx, st, StepCredit, ids.StepSettle, func(ctx context.Context, l paymentLog) (StepOutcome, error) {
		if err := l.require(ids.StepDebit, events.AccountDebited); err != nil {
			return StepOutcome{}, err
		}
		return appendStep(ctx, s, st, StepCredit, l.id(ids.StepDebit), AccountAggregate(), l.payment.Payee, l.id(ids.StepSettle),
			func(a domain.Account) (events.Payload, error) { return a.Credit(l.payment) })
	})
}

// Reverse gives the payer back its debit, when the payee could not be credited.
func (s *Service) Reverse(ctx context.Context, st StepCommand) (StepOutcome, error) {
	return s.step(ctx, st, StepReverse, ids.StepSettle, func(ctx context.Context, l paymentLog) (StepOutcome, error) {
		if err := l.require(ids.StepDebit, events.AccountDebited); err != nil {
			return StepOutcome{}, err
		}
		return appendStep(ctx, s, st, StepReverse, l.id(ids.StepDebit), AccountAggregate(), l.payment.Payer, l.id(ids.StepSettle),
			func(a domain.Account) (events.Payload, error) { return a.Reverse(l.payment, st.Code) })
	})
}

// Complete ends a payment whose payee was credited. It shares its event id with Fail.
func (s *Service) Complete(ctx context.Context, st StepCommand) (StepOutcome, error) {
	return s.step(ctx, st, StepComplete, ids.StepClose, func(ctx context.Context, l paymentLog) (StepOutcome, error) {
		if err := l.require(ids.StepSettle, events.AccountCredited); err != nil {
			return StepOutcome{}, err
		}
		return appendStep(ctx, s, st, StepComplete, l.id(ids.StepSettle), PaymentAggregate(), st.PaymentID.String(), l.id(ids.StepClose),
			func(p domain.Payment) (events.Payload, error) { return p.Complete() })
	})
}

// Fail ends a payment with no money moved: its debit was rejected, or reversed.
func (s *Service) Fail(ctx context.Context, st StepCommand) (StepOutcome, error) {
	return s.step(ctx, st, StepFail, ids.StepClose, func(ctx context.Context, l paymentLog) (StepOutcome, error) {
		var cause uuid.UUID
		switch {
		case l.require(ids.StepDebit, events.DebitRejected) == nil:
			cause = l.id(ids.StepDebit)
		case l.require(ids.StepSettle, events.DebitReversed) == nil:
			cause = l.id(ids.StepSettle)
		default:
			return StepOutcome{}, fmt.Errorf("%w: payment %s: no money may have moved (debit step: %s, settle step: %s)",
				ErrStepPrecondition, st.PaymentID, l.outcome(ids.StepDebit), l.outcome(ids.StepSettle))
		}
		return appendStep(ctx, s, st, StepFail, cause, PaymentAggregate(), st.PaymentID.String(), l.id(ids.StepClose),
			func(p domain.Payment) (events.Payload, error) { return p.Fail(st.Code, st.Reason) })
	})
}

// step loads the payment and the outcomes of its steps so far. A step already recorded answers with its
// outcome whatever the preconditions say now (a repeat must find its earlier answer); otherwise run
// checks the preconditions and appends. The log is read here without the lock, so run's append may still
// meet a concurrent outcome of the same step: Execute then answers that one.
func (s *Service) step(ctx context.Context, st StepCommand, name, stepID string, run func(context.Context, paymentLog) (StepOutcome, error)) (StepOutcome, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	l, err := s.loadPayment(ctx, st.PaymentID)
	if err != nil {
		return StepOutcome{}, err
	}
	if e, ok := l.steps[l.id(stepID)]; ok {
		return outcome(name, st.PaymentID, e, true), nil
	}
	return run(ctx, l)
}

// appendStep appends a step's outcome. Its causation is the event the caller names, or else the event
// that met the step's precondition (the PaymentInitiated, whose id is the payment id, for a debit).
func appendStep[S any](ctx context.Context, s *Service, st StepCommand, name string, cause uuid.UUID,
	agg eventstore.Aggregate[S], stream string, id uuid.UUID, decide func(S) (events.Payload, error)) (StepOutcome, error) {
	causation := st.CausationID
	if causation == "" {
		causation = cause.String()
	}
	meta := events.Metadata{SchemaVersion: events.SchemaVersion, CorrelationID: st.PaymentID.String(),
		CausationID: causation, RequestID: st.Caller.RequestID, ClientID: st.Caller.ClientID}
	res, err := execute(ctx, s, agg, stream, id, func(state S, _ int) ([]eventstore.NewEvent, error) {
		p, err := decide(state)
		if err != nil {
			return nil, err
		}
		return one(id, p, meta), nil
	})
	if err != nil {
		return StepOutcome{}, failure(fmt.Sprintf("%s payment %s", name, st.PaymentID), err)
	}
	e := res.Last()
	if e == nil || e.ID != id {
		return StepOutcome{}, fmt.Errorf("%s payment %s: the store returned no event with the step's id", name, st.PaymentID)
	}
	return outcome(name, st.PaymentID, *e, res.Replayed), nil
}

func outcome(name string, payment uuid.UUID, e eventstore.Event, replayed bool) StepOutcome {
	return StepOutcome{PaymentID: payment.String(), Step: name, EventType: e.Type, EventID: e.ID.String(),
		Position: e.Position.Token(), Replayed: replayed}
}

// paymentLog is a payment and the step events recorded for it so far.
type paymentLog struct {
	payment domain.Payment
	ids     map[string]uuid.UUID
	steps   map[uuid.UUID]eventstore.Event
}

func (s *Service) loadPayment(ctx context.Context, id uuid.UUID) (paymentLog, error) {
	p, _, err := eventstore.LoadState(ctx, s.store, PaymentAggregate(), id.String())
	if err != nil {
		return paymentLog{}, failure("load payment "+id.String(), err)
	}
	if !p.Initiated() {
		return paymentLog{}, fmt.Errorf("payment %s: %w", id, domain.ErrPaymentNotFound)
	}
	l := paymentLog{payment: p, ids: map[string]uuid.UUID{}, steps: map[uuid.UUID]eventstore.Event{}}
	for _, step := range []string{ids.StepDebit, ids.StepSettle, ids.StepClose} {
		l.ids[step] = ids.StepEvent(id, step)
	}
	recorded, err := s.store.EventsByID(ctx, l.ids[ids.StepDebit], l.ids[ids.StepSettle], l.ids[ids.StepClose])
	if err != nil {
		return paymentLog{}, failure("load steps of payment "+id.String(), err)
	}
	for _, e := range recorded {
		l.steps[e.ID] = e
	}
	return l, nil
}

func (l paymentLog) id(step string) uuid.UUID { return l.ids[step] }

// outcome names the event type recorded for a step, or "none".
func (l paymentLog) outcome(step string) string {
	if e, ok := l.steps[l.id(step)]; ok {
		return e.Type
	}
	return "none"
}

// require fails with ErrStepPrecondition unless step's recorded outcome is eventType.
func (l paymentLog) require(step, eventType string) error {
	if got := l.outcome(step); got != eventType {
		return fmt.Errorf("%w: payment %s: %s step is %s, needs %s", ErrStepPrecondition, l.payment.ID, step, got, eventType)
	}
	return nil
}
