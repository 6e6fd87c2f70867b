package app

import (
	"fmt"

	"github.com/google/uuid"

	"upi/command-service/internal/domain"
	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/ids"
	"upi/shared/platform/eventstore"
)

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

// rrn is the retrieval reference number the saga's debit gives: the group's time, and the tail its op
// drew from RRNSequence.
func (sg saga) rrn(r eventstore.Reads) (string, error) {
	tail, ok := r.Drawn()
	if !ok {
		return "", fmt.Errorf("%s %s: no rrn drawn for its debit", sg.kind, sg.key)
	}
	return domain.RRN(r.Now(), tail), nil
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
