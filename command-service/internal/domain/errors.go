// Package domain holds the command side's aggregates, Account and Payment, as pure code: state is rebuilt
// by folding a stream's events (Evolve) and a command is a decision on that state that yields the event to
// append or a domain error. Nothing here does I/O; the event store runs these functions under a stream's
// lock (see internal/app).
package domain

import "errors"

// Domain failures. Each maps to one stable problem code at the HTTP edge.
var (
	ErrAccountExists   = errors.New("the vpa is already taken")
	ErrAccountNotFound = errors.New("account not found")
	ErrPaymentExists   = errors.New("payment already initiated")
	ErrPaymentNotFound = errors.New("payment not found")
	ErrPaymentTerminal = errors.New("payment is already completed or failed")
	ErrInvalidAmount   = errors.New("amount must be a positive number of paise")
	// Refusals of a refund, decided on its payment's stream.
	ErrPaymentNotCompleted = errors.New("only a completed payment can be refunded")
	ErrRefundNotAllowed    = errors.New("only a payment to an ENTITY can be refunded")
	ErrRefundExceeds       = errors.New("completed and pending refunds would pass the payment's amount")
	ErrRefundWindowClosed  = errors.New("the payment is older than the refund window")
	ErrRefundNotFound      = errors.New("refund not found")
	ErrRefundTerminal      = errors.New("refund is already completed or failed")
	// ErrInvalidAccount refuses an opening whose type and mcc do not go together (checked at the edge
	// too, so a client meets it as 400 VALIDATION).
	ErrInvalidAccount = errors.New("invalid account type or mcc")
	// ErrBalanceLimit refuses a credit that would overflow the balance; no real account gets near it,
	// but the arithmetic must not wrap round.
	ErrBalanceLimit = errors.New("balance would exceed the largest amount an account can hold")
	// ErrWrongAccount is a programming error: a payment step decided on an account that is not its
	// payer or payee.
	ErrWrongAccount = errors.New("account is not a party to the payment")
	// ErrDepositLimitExceeded refuses a deposit that would pass the account's daily deposit cap.
	ErrDepositLimitExceeded = errors.New("deposits of the last 24 hours would pass the account's daily cap")
	// ErrCorruptStream means the stored events contradict each other (such as a balance_after that does
	// not follow from the amounts); loading stops rather than decide on a wrong state.
	ErrCorruptStream = errors.New("stream events are inconsistent")
)
