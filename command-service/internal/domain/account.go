package domain

import (
	"fmt"
	"math"
	"time"

	"upi/shared/contract/events"
	"upi/shared/contract/money"
	"upi/shared/contract/vpa"
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
	// Type is PERSON or ENTITY; MCC an entity's merchant category code.
	Type string `json:"type"`
	MCC  string `json:"mcc,omitempty"`
	// Window is what the account's limits look at: its debits of the last 24 hours, reversals netted out.
	// It is shared between states (the event store caches them): never written in place, only replaced.
	Window Window `json:"window,omitempty"`
	// Deposits are the account's deposits of the last 24 hours, for its daily deposit cap; shared like
	// Window.
	Deposits Window `json:"deposits,omitempty"`
	// Closed: the account was erased (AccountErased) and takes no money, ever again. Every snapshot written
	// before erasure existed is of an open account, so the field needs no new snapshot schema.
	Closed bool `json:"closed,omitempty"`
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
		a = Account{VPA: e.VPA, Opened: true, Owner: e.OwnerClientID, Holder: e.HolderName, CreatedAt: at,
			Type: e.Kind(), MCC: e.MCC}
		after = 0
	case events.FundsDepositedV1:
		a.Balance, after = a.Balance+money.Paise(e.AmountPaise), money.Paise(e.BalanceAfterPaise)
		a.Deposits = a.Deposits.add(at, at, money.Paise(e.AmountPaise), 1)
	case events.FundsWithdrawnV1:
		a.Balance, after = a.Balance-money.Paise(e.AmountPaise), money.Paise(e.BalanceAfterPaise)
	case events.WithdrawalRejectedV1:
		after = a.Balance // nothing moved
	case events.AccountDebitedV1:
		a.Balance, after = a.Balance-money.Paise(e.AmountPaise), money.Paise(e.BalanceAfterPaise)
		a.Window = a.Window.add(at, at, money.Paise(e.AmountPaise), p2p(e.PayeeType))
	case events.AccountCreditedV1:
		a.Balance, after = a.Balance+money.Paise(e.AmountPaise), money.Paise(e.BalanceAfterPaise)
	case events.DebitReversedV1:
		a.Balance, after = a.Balance+money.Paise(e.AmountPaise), money.Paise(e.BalanceAfterPaise)
		// A reversal written before windows existed does not say when its debit was: the debit then keeps
		// counting until it leaves the window, which errs on the side of the limit.
		if e.DebitedAt != nil {
			a.Window = a.Window.add(at, *e.DebitedAt, -money.Paise(e.AmountPaise), -p2p(e.PayeeType))
		}
	case events.DebitRejectedV1, events.RefundDebitRejectedV1:
		after = a.Balance // nothing moved
	case events.RefundDebitedV1:
		// A refund's debit is outside the payer limits: it does not enter the window.
		a.Balance, after = a.Balance-money.Paise(e.AmountPaise), money.Paise(e.BalanceAfterPaise)
	case events.RefundCreditedV1:
		a.Balance, after = a.Balance+money.Paise(e.AmountPaise), money.Paise(e.BalanceAfterPaise)
	case events.RefundDebitReversedV1:
		a.Balance, after = a.Balance+money.Paise(e.AmountPaise), money.Paise(e.BalanceAfterPaise)
	case events.AccountErasedV1:
		a.Closed, after = true, 0
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
	// Type is PERSON ("" too) or ENTITY; MCC an entity's merchant category code (validated at the edge).
	Type string
	MCC  string
}

// Open opens the account. A VPA is taken once, whoever asks. A PERSON's opening carries no type, so it
// reads as every opening written before kinds existed.
func (a Account) Open(cmd OpenAccount) (events.AccountOpenedV1, error) {
	if a.Opened {
		return events.AccountOpenedV1{}, ErrAccountExists
	}
	opened := events.AccountOpenedV1{VPA: cmd.VPA.String(), HolderName: cmd.HolderName, OwnerClientID: cmd.Client}
	switch cmd.Type {
	case "", events.AccountPerson:
		if cmd.MCC != "" {
			return events.AccountOpenedV1{}, fmt.Errorf("%w: a PERSON account has no mcc", ErrInvalidAccount)
		}
	case events.AccountEntity:
		if cmd.MCC == "" {
			return events.AccountOpenedV1{}, fmt.Errorf("%w: an ENTITY account needs an mcc", ErrInvalidAccount)
		}
		opened.Type, opened.MCC = cmd.Type, cmd.MCC
	default:
		return events.AccountOpenedV1{}, fmt.Errorf("%w: type %q", ErrInvalidAccount, cmd.Type)
	}
	return opened, nil
}

// DepositTerms are what a deposit is decided under besides its amount and reference: when it happens, the
// account's daily deposit cap (0: none), and the settlement stream its bank's side goes to.
type DepositTerms struct {
	At         time.Time
	DailyCap   money.Paise
	Settlement string
}

// Deposit credits money that came from the account's bank (its settlement account is debited with it).
// Only the owner may deposit; to anyone else the account does not exist, so that its existence does not
// leak. Deposits of the last 24 hours, this one included, may not pass the daily cap.
func (a Account) Deposit(client string, amount money.Amount, reference string, t DepositTerms) (events.FundsDepositedV1, error) {
	if !a.Opened || a.Owner != client {
		return events.FundsDepositedV1{}, ErrAccountNotFound
	}
	if a.Closed {
		return events.FundsDepositedV1{}, ErrAccountClosed
	}
	if t.DailyCap > 0 {
		deposited, _ := a.Deposits.Totals(t.At)
		if deposited+amount.Paise() > t.DailyCap {
			return events.FundsDepositedV1{}, ErrDepositLimitExceeded
		}
	}
	after, err := a.credited(amount.Paise())
	if err != nil {
		return events.FundsDepositedV1{}, err
	}
	return events.FundsDepositedV1{VPA: a.VPA, AmountPaise: int64(amount.Paise()), Reference: reference,
		BalanceAfterPaise: int64(after), Settlement: t.Settlement}, nil
}

// Withdrawal is the command to send money from an account to its bank.
type Withdrawal struct {
	ID         string
	Client     string
	Amount     money.Amount
	Reference  string
	Settlement string
	// RRN gives the withdrawal's RRN; it is called only when money moves.
	RRN func() (string, error)
}

// Withdraw takes the amount out of the account for its bank, or, when the balance does not cover it,
// records the rejection: like a payment's debit, a declined withdrawal is a business outcome kept in the
// log. Only the owner may withdraw.
func (a Account) Withdraw(w Withdrawal) (events.Payload, error) {
	if !a.Opened || a.Owner != w.Client {
		return nil, ErrAccountNotFound
	}
	if a.Closed {
		return nil, ErrAccountClosed
	}
	amount := w.Amount.Paise()
	if amount <= 0 {
		return nil, ErrInvalidAmount
	}
	if a.Balance < amount {
		return events.WithdrawalRejectedV1{WithdrawalID: w.ID, VPA: a.VPA, AmountPaise: int64(amount),
			Reference: w.Reference, Code: events.CodeInsufficientFunds, BalancePaise: int64(a.Balance),
			ClientID: w.Client}, nil
	}
	rrn, err := w.RRN()
	if err != nil {
		return nil, err
	}
	return events.FundsWithdrawnV1{WithdrawalID: w.ID, VPA: a.VPA, AmountPaise: int64(amount),
		Reference: w.Reference, BalanceAfterPaise: int64(a.Balance - amount), RRN: rrn,
		Settlement: w.Settlement, ClientID: w.Client}, nil
}

// DebitTerms are what a debit is decided under besides the account and its payment: the time of the
// debit, the payer limits in force, and where the RRN the debit gives the payment comes from (asked only
// when money moves: a rejection takes none).
type DebitTerms struct {
	At     time.Time
	Limits Limits
	RRN    func() (string, error)
}

// Debit takes the payment's amount from its payer, or, when a limit of the account or its balance does not
// allow it, records the rejection: a declined debit is a business outcome kept in the log, not an error.
// It is decided under the account's lock, so two payments can never both pass a limit only one fits.
func (a Account) Debit(p Payment, t DebitTerms) (events.Payload, error) {
	if err := a.partyTo(p, p.Payer); err != nil {
		return nil, err
	}
	code := ""
	if a.Closed {
		code = events.CodeAccountClosed
	}
	if code == "" {
		code = t.Limits.breach(a, p, t.At)
	}
	if code == "" && a.Balance < p.Amount {
		code = events.CodeInsufficientFunds
	}
	if code != "" {
		return events.DebitRejectedV1{VPA: a.VPA, PaymentID: p.ID, AmountPaise: int64(p.Amount),
			Code: code, BalancePaise: int64(a.Balance)}, nil
	}
	rrn, err := t.RRN()
	if err != nil {
		return nil, err
	}
	return events.AccountDebitedV1{VPA: a.VPA, PaymentID: p.ID, AmountPaise: int64(p.Amount),
		CounterpartyVPA: p.Payee, BalanceAfterPaise: int64(a.Balance - p.Amount), RRN: rrn,
		PayeeType: p.PayeeType}, nil
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
	if a.Closed {
		return events.AccountCreditedV1{}, ErrAccountClosed
	}
	after, err := a.credited(p.Amount)
	if err != nil {
		return events.AccountCreditedV1{}, err
	}
	return events.AccountCreditedV1{VPA: a.VPA, PaymentID: p.ID, AmountPaise: int64(p.Amount),
		CounterpartyVPA: p.Payer, BalanceAfterPaise: int64(after)}, nil
}

// Reverse gives the payer back a debit, made at debitedAt, that could not be settled; it nets the debit
// out of the account's window.
func (a Account) Reverse(p Payment, code string, debitedAt time.Time) (events.DebitReversedV1, error) {
	if err := a.partyTo(p, p.Payer); err != nil {
		return events.DebitReversedV1{}, err
	}
	after, err := a.credited(p.Amount)
	if err != nil {
		return events.DebitReversedV1{}, err
	}
	debitedAt = debitedAt.UTC()
	return events.DebitReversedV1{VPA: a.VPA, PaymentID: p.ID, AmountPaise: int64(p.Amount),
		CounterpartyVPA: p.Payee, Code: code, BalanceAfterPaise: int64(after), DebitedAt: &debitedAt,
		PayeeType: p.PayeeType}, nil
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
