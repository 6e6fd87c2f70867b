// Package money holds amounts of Indian rupees as whole paise. There are no floats anywhere in the system.
package money

import (
	"errors"
	"fmt"
)

// Currency is the only currency the system accepts.
const Currency = "INR"

// Paise is an amount in paise (1 rupee = 100 paise). Balances are Paise too and never go below zero.
type Paise int64

// ErrNotPositive and ErrTooLarge are the ways a transfer amount can be invalid.
var (
	ErrNotPositive = errors.New("amount must be a positive number of paise")
	ErrTooLarge    = errors.New("amount is above the limit")
)

// Amount is a validated, strictly positive amount no larger than a limit. Build it with NewAmount; the zero
// value is not a valid amount.
type Amount struct{ paise Paise }

// NewAmount validates paise against (0, max]. A max of 0 or less means no upper limit.
func NewAmount(paise int64, max Paise) (Amount, error) {
	if paise <= 0 {
		return Amount{}, ErrNotPositive
	}
	if max > 0 && Paise(paise) > max {
		return Amount{}, fmt.Errorf("%w of %d paise", ErrTooLarge, max)
	}
	return Amount{paise: Paise(paise)}, nil
}

// Paise returns the amount.
func (a Amount) Paise() Paise { return a.paise }

// IsZero reports whether a is the zero value (never a valid amount).
func (a Amount) IsZero() bool { return a.paise == 0 }
