package domain

import (
	"fmt"
	"math"
	"time"

	"upi/shared/events"
	"upi/shared/money"
	"upi/shared/vpa"
)

// Account is the state of one account stream (keyed by its VPA). It is also the snapshot's shape: a
// change to it needs a new snapshot schema version (internal/app).
type Account struct {
	VPA       string      `json:"vpa"`
	Opened    bool        `json:"opened"`
	Owner     string      `json:"owner_client_id"`
	Holder    string      `json:"holder_name"`
	Balance   money.Paise `json:"balance_paise"`
	CreatedAt time.Time   `json:"created_at"`
	UpdatedAt time.Time   `json:"updated_at"`
}

// Evolve folds one event, appended at `at`, into the account. It checks every balance_after against its
// own arithmetic, so a stream that does not add up is never decided upon.
func (a Account) Evolve(e events.Payload, at time.Time) (Account, error) {
	if _, ok := e.(events.AccountOpenedV1); !ok && !a.Opened {
		return a, fmt.Errorf("%w: %s before AccountOpened", ErrCorruptStream, e.EventType())
	}
	var after money.Paise
	switch e := e.(type) {
	case events.AccountOpenedV1:
		if a.Opened {
			return a, fmt.Errorf("%w: account %s opened twice", ErrCorruptStream, e.VPA)
		}
		a = Account{VPA: e.VPA, Opened: true, Owner: e.OwnerClientID, Holder: e.HolderName, CreatedAt: at}
		after = 0
	case events.FundsDepositedV1:
		a.Balance, after = a.Balance+money.Paise(e.AmountPaise), money.Paise(e.BalanceAfterPaise)
	case events.AccountDebitedV1:
		a.Balance, after = a.Balance-money.Paise(e.AmountPaise), money.Paise(e.BalanceAfterPaise)
	case events.AccountCreditedV1:
		a.Balance, after = a.Balance+money.Paise(e.AmountPaise), money.Paise(e.BalanceAfterPaise)
	case events.DebitReversedV1:
		a.Balance, after = a.Balance+money.Paise(e.AmountPaise), money.Paise(e.BalanceAfterPaise)
	case events.DebitRejectedV1:
		after = a.Balance // nothing moved
	default:
		return a, fmt.Errorf("%w: %s on an account", ErrCorruptStream, e.EventType())
	}
	if a.Balance != after || a.Balance < 0 {
		return a, fmt.Errorf("%w: %s leaves balance %d, event says %d", ErrCorruptStream, e.EventType(), a.Balance, after)
	}
	a.UpdatedAt = at
	return a, nil
}

// OpenAccount is the command to open an account.
type OpenAccount struct {
	VPA        vpa.VPA
	HolderName string
	Client     string
}

// Open opens the account. A VPA is taken once, whoever asks.
func (a Account) Open(cmd OpenAccount) (events.AccountOpenedV1, error) {
	if a.Opened {
		return events.AccountOpenedV1{}, ErrAccountExists
	}
	return events.AccountOpenedV1{VPA: cmd.VPA.String(), HolderName: cmd.HolderName, OwnerClientID: cmd.Client}, nil
}

// Deposit credits money from outside the system. Only the owner may deposit; to anyone else the account
// does not exist, so that its existence does not leak.
func (a Account) Deposit(client string, amount money.Amount, reference string) (events.FundsDepositedV1, error) {
	if !a.Opened || a.Owner != client {
		return events.FundsDepositedV1{}, ErrAccountNotFound
	}
	after, err := a.credited(amount.Paise())
	if err != nil {
		return events.FundsDepositedV1{}, err
	}
	return events.FundsDepositedV1{VPA: a.VPA, AmountPaise: int64(amount.Paise()), Reference: reference,
		BalanceAfterPaise: int64(after)}, nil
}

// Debit takes the payment's amount from its payer, or, when the balance does not cover it, records the
// rejection: a declined debit is a business outcome kept in the log, not an error.
func (a Account) Debit(p Payment) (events.Payload, error) {
	if err := a.partyTo(p, p.Payer); err != nil {
		return nil, err
	}
	if a.Balance < p.Amount {
		return events.DebitRejectedV1{VPA: a.VPA, PaymentID: p.ID, AmountPaise: int64(p.Amount),
			Code: events.CodeInsufficientFunds, BalancePaise: int64(a.Balance)}, nil
	}
	return events.AccountDebitedV1{VPA: a.VPA, PaymentID: p.ID, AmountPaise: int64(p.Amount),
		CounterpartyVPA: p.Payee, BalanceAfterPaise: int64(a.Balance - p.Amount)}, nil
}

// RejectDebit records that the payment's debit will never happen (the workflow gave up before it), so
// that no later debit of the same payment can move money.
func (a Account) RejectDebit(p Payment, code string) (events.DebitRejectedV1, error) {
	if err := a.partyTo(p, p.Payer); err != nil {
		return events.DebitRejectedV1{}, err
	}
	return events.DebitRejectedV1{VPA: a.VPA, PaymentID: p.ID, AmountPaise: int64(p.Amount), Code: code,
		BalancePaise: int64(a.Balance)}, nil
}

// Credit gives the payment's amount to its payee.
func (a Account) Credit(p Payment) (events.AccountCreditedV1, error) {
	if err := a.partyTo(p, p.Payee); err != nil {
		return events.AccountCreditedV1{}, err
	}
	after, err := a.credited(p.Amount)
	if err != nil {
		return events.AccountCreditedV1{}, err
	}
	return events.AccountCreditedV1{VPA: a.VPA, PaymentID: p.ID, AmountPaise: int64(p.Amount),
		CounterpartyVPA: p.Payer, BalanceAfterPaise: int64(after)}, nil
}

// Reverse gives the payer back a debit that could not be settled.
func (a Account) Reverse(p Payment, code string) (events.DebitReversedV1, error) {
	if err := a.partyTo(p, p.Payer); err != nil {
		return events.DebitReversedV1{}, err
	}
	after, err := a.credited(p.Amount)
	if err != nil {
		return events.DebitReversedV1{}, err
	}
	return events.DebitReversedV1{VPA: a.VPA, PaymentID: p.ID, AmountPaise: int64(p.Amount),
		CounterpartyVPA: p.Payee, Code: code, BalanceAfterPaise: int64(after)}, nil
}

func (a Account) partyTo(p Payment, party string) error {
	if !a.Opened {
		return ErrAccountNotFound
	}
	if p.Status == "" {
		return ErrPaymentNotFound
	}
	if a.VPA != party {
		return fmt.Errorf("%w: %s is not %s of payment %s", ErrWrongAccount, a.VPA, party, p.ID)
	}
	if p.Amount <= 0 {
		return ErrInvalidAmount
	}
	return nil
}

func (a Account) credited(amount money.Paise) (money.Paise, error) {
	if amount <= 0 {
		return 0, ErrInvalidAmount
	}
	if a.Balance > math.MaxInt64-amount {
		return 0, ErrBalanceLimit
	}
	return a.Balance + amount, nil
}
