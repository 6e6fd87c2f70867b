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
	// The RRNs the batch's debits may give, leased before its transaction; what replays and rejections
	// leave unused goes back.
	rrns, err := s.rrns.Lease(ctx, debits(steps))
	if err != nil {
		return nil, fmt.Errorf("lease rrns for steps: %w", err)
	}
	defer rrns.Release()
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
			op, err = refundStepOp(c, st, account, rrns)
		} else {
			op, err = stepOp(c, st, account, s.limits, rrns)
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

// debits counts the steps that may give an RRN.
func debits(steps []contract.Step) int {
	n := 0
	for _, st := range steps {
		if st.Step == contract.StepDebit || st.Step == contract.StepRefundDebit {
			n++
		}
	}
	return n
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
func stepOp(c Caller, st contract.Step, account string, limits domain.Limits, rrns *RRNLease) (*eventstore.Op, error) {
	pid := st.PaymentID
	sg := paymentSaga(pid)
	if party(st.Step) != "" && account == "" {
		return nil, fmt.Errorf("payment %s: %w", pid, domain.ErrPaymentNotFound)
	}
	switch st.Step {
	case contract.StepDebit, contract.StepRejectDebit, contract.StepCredit, contract.StepReverse:
		// A payment can only have ended once its debit slot is filled (fail needs a rejected debit, or a
		// reversal of one; complete a credit after one), and a filled slot answers the debit as a replay:
		// so a debit never needs to look at the close slot.
		// The debit is checked against the payer's limits at the group's transaction time.
		return accountStep(c, st, account, sg, moves[domain.Payment]{
			debit: func(a domain.Account, p domain.Payment, rrns *RRNLease, at time.Time) (events.Payload, error) {
				return a.Debit(p, domain.DebitTerms{At: at, Limits: limits, RRN: rrns.Take})
			},
			rejectDebit: func(a domain.Account, p domain.Payment) (events.Payload, error) { return a.RejectDebit(p, st.Code) },
			credit:      func(a domain.Account, p domain.Payment) (events.Payload, error) { return a.Credit(p) },
			reverse: func(a domain.Account, p domain.Payment, debited eventstore.Event) (events.Payload, error) {
				return a.Reverse(p, st.Code, debited.CreatedAt)
			},
			rrns: rrns,
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

// moves are a saga's decisions on an account, given the saga's terms T: its debit (taking its RRN from the
// group's lease when it moves money), the rejection of its debit, and its credit or the reversal of its
// debit (debited).
type moves[T any] struct {
	debit       func(a domain.Account, t T, rrns *RRNLease, at time.Time) (events.Payload, error)
	rejectDebit func(a domain.Account, t T) (events.Payload, error)
	credit      func(a domain.Account, t T) (events.Payload, error)
	reverse     func(a domain.Account, t T, debited eventstore.Event) (events.Payload, error)
	// rrns are the RRNs leased for the step's group.
	rrns *RRNLease
}

// moneyStep is the op of a step that moves money on account for a saga (a payment's, or a refund's): terms
// reads the saga's terms T, checked against account, and the event that set them, the cause of a debit or
// its rejection. A debit takes its RRN from rrns; a credit or a reversal needs the debit to have taken the
// money, and that is its cause.
func moneyStep[T any](c Caller, st contract.Step, account string, sg saga, needs []uuid.UUID,
	terms func(r eventstore.Reads) (T, uuid.UUID, error), m moves[T]) *eventstore.Op {
	debits := slot(st.Step) == ids.StepDebit
	if !debits {
		needs = append(needs, sg.debit)
	}
	return slotOp(c, st, AccountAggregate(), account, needs,
		func(a domain.Account, r eventstore.Reads) (events.Payload, uuid.UUID, error) {
			t, opening, err := terms(r)
			if err != nil {
				return nil, uuid.Nil, err
			}
			switch st.Step {
			case contract.StepDebit, contract.StepRefundDebit:
				payload, err := m.debit(a, t, m.rrns, r.Now())
				return payload, opening, err
			case contract.StepRejectDebit, contract.StepRefundRejectDebit:
				payload, err := m.rejectDebit(a, t)
				return payload, opening, err
			}
			if err := sg.requireDebited(r); err != nil {
				return nil, uuid.Nil, err
			}
			var payload events.Payload
			if st.Step == contract.StepCredit || st.Step == contract.StepRefundCredit {
				payload, err = m.credit(a, t)
			} else {
				debited, _ := r.Event(sg.debit)
				payload, err = m.reverse(a, t, debited)
			}
			return payload, sg.debit, err
		})
}

// accountStep is the op of a payment's step that moves money on account: it reads the payment's
// PaymentInitiated (whose event id is the payment id), checks that account is the step's party to the
// payment, and decides.
func accountStep(c Caller, st contract.Step, account string, sg saga, m moves[domain.Payment]) *eventstore.Op {
	op := moneyStep(c, st, account, sg, nil, func(r eventstore.Reads) (domain.Payment, uuid.UUID, error) {
		p, opening, err := initiated(r, st.PaymentID)
		if err != nil {
			return p, opening, err
		}
		return p, opening, checkParty(st.Step, account, p.Payer, p.Payee, "payment "+p.ID)
	}, m)
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

// saga is what the steps of a payment and of a refund (a payment in reverse) share: the saga's key, the
// event ids of its debit and settle slots, and the event types that may fill them.
type saga struct {
	kind          string // "payment" or "refund", in errors
	key           uuid.UUID
	debit, settle uuid.UUID
	// debited or rejected fills the debit slot; credited or reversed, the settle slot.
	debited, rejected, credited, reversed string
}

func paymentSaga(pid uuid.UUID) saga {
	return saga{kind: "payment", key: pid,
		debit: ids.StepEvent(pid, ids.StepDebit), settle: ids.StepEvent(pid, ids.StepSettle),
		debited: events.AccountDebited, rejected: events.DebitRejected,
		credited: events.AccountCredited, reversed: events.DebitReversed}
}

func refundSaga(rid uuid.UUID) saga {
	return saga{kind: "refund", key: rid,
		debit: ids.StepEvent(rid, ids.StepDebit), settle: ids.StepEvent(rid, ids.StepSettle),
		debited: events.RefundDebited, rejected: events.RefundDebitRejected,
		credited: events.RefundCredited, reversed: events.RefundDebitReversed}
}

// requireDebited fails with ErrStepPrecondition unless the saga's debit took the money.
func (sg saga) requireDebited(r eventstore.Reads) error {
	return require(r, sg.key, ids.StepDebit, sg.debit, sg.debited)
}

// completeNeeds and failNeeds are the slots the saga's complete and fail steps read.
func (sg saga) completeNeeds() []uuid.UUID { return []uuid.UUID{sg.settle} }
func (sg saga) failNeeds() []uuid.UUID     { return []uuid.UUID{sg.debit, sg.settle} }

// failCause is the event that lets a saga fail with no money moved: its debit slot's rejection, or its
// settle slot's reversal; otherwise money may have moved and failing is refused (ErrStepPrecondition).
func (sg saga) failCause(r eventstore.Reads) (uuid.UUID, error) {
	switch {
	case recorded(r, sg.debit) == sg.rejected:
		return sg.debit, nil
	case recorded(r, sg.settle) == sg.reversed:
		return sg.settle, nil
	}
	return uuid.Nil, fmt.Errorf("%w: %s %s: no money may have moved (debit slot: %s, settle slot: %s)",
		ErrStepPrecondition, sg.kind, sg.key, recorded(r, sg.debit), recorded(r, sg.settle))
}

// completer and failer are the saga's own stream (domain.Payment, domain.Refund) as its ending steps see
// it.
type (
	completer[P events.Payload] interface{ Complete() (P, error) }
	failer[P events.Payload]    interface {
		Fail(code, reason string) (P, error)
	}
)

// complete decides a saga's complete step: only once its settle slot holds the credit, which is its cause.
func complete[P events.Payload](sg saga, own completer[P], r eventstore.Reads) (events.Payload, uuid.UUID, error) {
	if err := require(r, sg.key, ids.StepSettle, sg.settle, sg.credited); err != nil {
		return nil, uuid.Nil, err
	}
	payload, err := own.Complete()
	return payload, sg.settle, err
}

// fail decides a saga's fail step: only with no money moved (failCause).
func fail[P events.Payload](sg saga, st contract.Step, own failer[P], r eventstore.Reads) (events.Payload, uuid.UUID, error) {
	cause, err := sg.failCause(r)
	if err != nil {
		return nil, uuid.Nil, err
	}
	payload, err := own.Fail(st.Code, st.Reason)
	return payload, cause, err
}
