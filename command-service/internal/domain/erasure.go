package domain

import (
	"errors"

	"upi/shared/contract/events"
)

// Errors of erasure (docs/architecture.md, "Personal data and erasure").
var (
	// ErrAccountClosed: the account was erased; it takes no money, ever again.
	ErrAccountClosed = errors.New("the account was erased and is closed")
	// ErrAccountNotEmpty: only an account with a zero balance may be erased (its money would be lost).
	ErrAccountNotEmpty = errors.New("the account's balance is not zero")
	// ErrAccountInFlight: money of the account is in flight (a debit whose payment or refund has not
	// ended), and could come back to it.
	ErrAccountInFlight = errors.New("a payment or refund of the account is in flight")
)

// Erase closes the account for good, for operator. It needs a zero balance and, checked by the caller
// under the account's lock, no debit of the account whose payment or refund has not ended (inFlight): such
// a debit could be reversed, and the money would come back to a closed account. An account erased already
// answers ErrAccountClosed (the caller answers the first erasure, by its event id).
func (a Account) Erase(operator string, inFlight bool) (events.AccountErasedV1, error) {
	switch {
	case !a.Opened:
		return events.AccountErasedV1{}, ErrAccountNotFound
	case a.Closed:
		return events.AccountErasedV1{}, ErrAccountClosed
	case a.Balance != 0:
		return events.AccountErasedV1{}, ErrAccountNotEmpty
	case inFlight:
		return events.AccountErasedV1{}, ErrAccountInFlight
	}
	return events.AccountErasedV1{VPA: a.VPA, Operator: operator}, nil
}
