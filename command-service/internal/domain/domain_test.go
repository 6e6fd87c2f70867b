package domain

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"upi/shared/contract/events"
	"upi/shared/contract/money"
	"upi/shared/contract/vpa"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func amount(t *testing.T, p int64) money.Amount {
	t.Helper()
	a, err := money.NewAmount(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func foldAccount(t *testing.T, given []events.Payload) Account {
	t.Helper()
	var a Account
	for i, e := range given {
		var err error
		if a, err = a.Evolve(e, t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatalf("given event %d: %v", i, err)
		}
	}
	return a
}

func foldPayment(t *testing.T, given []events.Payload) Payment {
	t.Helper()
	var p Payment
	for i, e := range given {
		var err error
		if p, err = p.Evolve(e, t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatalf("given event %d: %v", i, err)
		}
	}
	return p
}

const pid = "0b7f3f39-8a4d-4bd4-9a55-1b2f1a0c5d11"

var (
	opened    = events.AccountOpenedV1{VPA: "alice@bank", HolderName: "Alice", OwnerClientID: "psp-a"}
	payeeOpen = events.AccountOpenedV1{VPA: "bob@bank", HolderName: "Bob", OwnerClientID: "psp-b"}
	initiated = events.PaymentInitiatedV1{PaymentID: pid, PayerVPA: "alice@bank", PayeeVPA: "bob@bank",
		AmountPaise: 500, ClientID: "psp-a"}
)

func deposit(amount, after int64) events.FundsDepositedV1 {
	return events.FundsDepositedV1{VPA: "alice@bank", AmountPaise: amount, Reference: "r", BalanceAfterPaise: after}
}

func TestAccountDecisions(t *testing.T) {
	pending := foldPayment(t, []events.Payload{initiated})
	for _, tc := range []struct {
		name    string
		given   []events.Payload
		decide  func(a Account) (events.Payload, error)
		want    events.Payload
		wantErr error
	}{
		{
			name: "open a new account",
			decide: func(a Account) (events.Payload, error) {
				return a.Open(OpenAccount{VPA: vpa.MustParse("alice@bank"), HolderName: "Alice", Client: "psp-a"})
			},
			want: opened,
		},
		{
			name:  "open a taken vpa, by another client",
			given: []events.Payload{opened},
			decide: func(a Account) (events.Payload, error) {
				return a.Open(OpenAccount{VPA: vpa.MustParse("alice@bank"), HolderName: "Eve", Client: "psp-e"})
			},
			wantErr: ErrAccountExists,
		},
		{
			name:   "deposit by the owner",
			given:  []events.Payload{opened, deposit(100, 100)},
			decide: func(a Account) (events.Payload, error) { return a.Deposit("psp-a", amount(t, 250), "neft-1") },
			want:   events.FundsDepositedV1{VPA: "alice@bank", AmountPaise: 250, Reference: "neft-1", BalanceAfterPaise: 350},
		},
		{
			name:    "deposit by another client: the account does not exist for it",
			given:   []events.Payload{opened},
			decide:  func(a Account) (events.Payload, error) { return a.Deposit("psp-b", amount(t, 250), "neft-1") },
			wantErr: ErrAccountNotFound,
		},
		{
			name:    "deposit into an unknown account",
			decide:  func(a Account) (events.Payload, error) { return a.Deposit("psp-a", amount(t, 250), "neft-1") },
			wantErr: ErrAccountNotFound,
		},
		{
			name:    "deposit of the zero amount",
			given:   []events.Payload{opened},
			decide:  func(a Account) (events.Payload, error) { return a.Deposit("psp-a", money.Amount{}, "neft-1") },
			wantErr: ErrInvalidAmount,
		},
		{
			name:    "deposit that would overflow the balance",
			given:   []events.Payload{opened, deposit(math.MaxInt64-10, math.MaxInt64-10)},
			decide:  func(a Account) (events.Payload, error) { return a.Deposit("psp-a", amount(t, 11), "neft-1") },
			wantErr: ErrBalanceLimit,
		},
		{
			name:   "debit covered by the balance",
			given:  []events.Payload{opened, deposit(800, 800)},
			decide: func(a Account) (events.Payload, error) { return a.Debit(pending, DebitTerms{}) },
			want: events.AccountDebitedV1{VPA: "alice@bank", PaymentID: pid, AmountPaise: 500, CounterpartyVPA: "bob@bank",
				BalanceAfterPaise: 300},
		},
		{
			name:   "debit of exactly the balance leaves zero",
			given:  []events.Payload{opened, deposit(500, 500)},
			decide: func(a Account) (events.Payload, error) { return a.Debit(pending, DebitTerms{}) },
			want: events.AccountDebitedV1{VPA: "alice@bank", PaymentID: pid, AmountPaise: 500, CounterpartyVPA: "bob@bank",
				BalanceAfterPaise: 0},
		},
		{
			name:   "debit beyond the balance is a recorded rejection, not an error",
			given:  []events.Payload{opened, deposit(499, 499)},
			decide: func(a Account) (events.Payload, error) { return a.Debit(pending, DebitTerms{}) },
			want: events.DebitRejectedV1{VPA: "alice@bank", PaymentID: pid, AmountPaise: 500,
				Code: events.CodeInsufficientFunds, BalancePaise: 499},
		},
		{
			name:    "debit of the wrong account",
			given:   []events.Payload{payeeOpen, events.FundsDepositedV1{VPA: "bob@bank", AmountPaise: 900, BalanceAfterPaise: 900}},
			decide:  func(a Account) (events.Payload, error) { return a.Debit(pending, DebitTerms{}) },
			wantErr: ErrWrongAccount,
		},
		{
			name:    "debit of a payment never initiated",
			given:   []events.Payload{opened, deposit(900, 900)},
			decide:  func(a Account) (events.Payload, error) { return a.Debit(Payment{}, DebitTerms{}) },
			wantErr: ErrPaymentNotFound,
		},
		{
			name:   "credit the payee",
			given:  []events.Payload{payeeOpen},
			decide: func(a Account) (events.Payload, error) { return a.Credit(pending) },
			want: events.AccountCreditedV1{VPA: "bob@bank", PaymentID: pid, AmountPaise: 500, CounterpartyVPA: "alice@bank",
				BalanceAfterPaise: 500},
		},
		{
			name:    "credit the payer instead of the payee",
			given:   []events.Payload{opened},
			decide:  func(a Account) (events.Payload, error) { return a.Credit(pending) },
			wantErr: ErrWrongAccount,
		},
		{
			name: "reverse a debit",
			given: []events.Payload{opened, deposit(800, 800), events.AccountDebitedV1{VPA: "alice@bank", PaymentID: pid,
				AmountPaise: 500, CounterpartyVPA: "bob@bank", BalanceAfterPaise: 300}},
			decide: func(a Account) (events.Payload, error) {
				return a.Reverse(pending, events.CodePayeeUnavailable, time.Time{})
			},
			want: events.DebitReversedV1{VPA: "alice@bank", PaymentID: pid, AmountPaise: 500, CounterpartyVPA: "bob@bank",
				Code: events.CodePayeeUnavailable, BalanceAfterPaise: 800, DebitedAt: &time.Time{}},
		},
		{
			name:   "reject a debit that never happened",
			given:  []events.Payload{opened, deposit(800, 800)},
			decide: func(a Account) (events.Payload, error) { return a.RejectDebit(pending, events.CodeProcessingError) },
			want: events.DebitRejectedV1{VPA: "alice@bank", PaymentID: pid, AmountPaise: 500, Code: events.CodeProcessingError,
				BalancePaise: 800},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.decide(foldAccount(t, tc.given))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("event = %#v\nwant    %#v", got, tc.want)
			}
		})
	}
}

func TestAccountEvolve(t *testing.T) {
	debitedAt := t0.Add(2 * time.Second)
	a := foldAccount(t, []events.Payload{opened, deposit(800, 800),
		events.AccountDebitedV1{VPA: "alice@bank", PaymentID: pid, AmountPaise: 500, BalanceAfterPaise: 300},
		events.DebitRejectedV1{VPA: "alice@bank", PaymentID: pid, AmountPaise: 5000, BalancePaise: 300},
		events.AccountCreditedV1{VPA: "alice@bank", PaymentID: pid, AmountPaise: 20, BalanceAfterPaise: 320},
		events.DebitReversedV1{VPA: "alice@bank", PaymentID: pid, AmountPaise: 500, BalanceAfterPaise: 820,
			DebitedAt: &debitedAt},
	})
	want := Account{VPA: "alice@bank", Opened: true, Owner: "psp-a", Holder: "Alice", Balance: 820,
		CreatedAt: t0, UpdatedAt: t0.Add(5 * time.Second), Type: events.AccountPerson,
		Window: Window{{Minute: debitedAt.Truncate(time.Minute)}}}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("state = %+v\nwant    %+v", a, want)
	}

	// Streams that do not add up are refused rather than decided upon.
	for name, given := range map[string][]events.Payload{
		"deposit before opening":    {deposit(1, 1)},
		"opened twice":              {opened, opened},
		"wrong balance_after":       {opened, deposit(100, 101)},
		"debit below zero":          {opened, events.AccountDebitedV1{VPA: "alice@bank", AmountPaise: 1, BalanceAfterPaise: -1}},
		"payment event on accounts": {opened, events.PaymentCompletedV1{PaymentID: pid}},
	} {
		var a Account
		var err error
		for _, e := range given {
			if a, err = a.Evolve(e, t0); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrCorruptStream) {
			t.Errorf("%s: err = %v, want ErrCorruptStream", name, err)
		}
	}
}

func TestPaymentDecisions(t *testing.T) {
	completed := events.PaymentCompletedV1{PaymentID: pid}
	failed := events.PaymentFailedV1{PaymentID: pid, Code: events.CodeInsufficientFunds}
	initiate := InitiatePayment{ID: pid, Payer: vpa.MustParse("alice@bank"), Payee: vpa.MustParse("bob@bank"),
		Amount: amount(t, 500), Client: "psp-a"}
	for _, tc := range []struct {
		name    string
		given   []events.Payload
		decide  func(p Payment) (events.Payload, error)
		want    events.Payload
		wantErr error
	}{
		{name: "initiate", decide: func(p Payment) (events.Payload, error) { return p.Initiate(initiate) }, want: initiated},
		{name: "initiate twice", given: []events.Payload{initiated},
			decide: func(p Payment) (events.Payload, error) { return p.Initiate(initiate) }, wantErr: ErrPaymentExists},
		{name: "initiate without an amount", decide: func(p Payment) (events.Payload, error) {
			cmd := initiate
			cmd.Amount = money.Amount{}
			return p.Initiate(cmd)
		}, wantErr: ErrInvalidAmount},
		{name: "initiate to oneself", decide: func(p Payment) (events.Payload, error) {
			cmd := initiate
			cmd.Payee = cmd.Payer
			return p.Initiate(cmd)
		}, wantErr: ErrWrongAccount},
		{name: "complete", given: []events.Payload{initiated},
			decide: func(p Payment) (events.Payload, error) { return p.Complete() }, want: completed},
		{name: "fail", given: []events.Payload{initiated},
			decide: func(p Payment) (events.Payload, error) { return p.Fail(events.CodeInsufficientFunds, "") }, want: failed},
		{name: "complete an unknown payment",
			decide: func(p Payment) (events.Payload, error) { return p.Complete() }, wantErr: ErrPaymentNotFound},
		{name: "a failed payment stays failed", given: []events.Payload{initiated, failed},
			decide: func(p Payment) (events.Payload, error) { return p.Complete() }, wantErr: ErrPaymentTerminal},
		{name: "a completed payment stays completed", given: []events.Payload{initiated, completed},
			decide: func(p Payment) (events.Payload, error) { return p.Fail(events.CodeProcessingError, "late") }, wantErr: ErrPaymentTerminal},
		{name: "a completed payment is not completed again", given: []events.Payload{initiated, completed},
			decide: func(p Payment) (events.Payload, error) { return p.Complete() }, wantErr: ErrPaymentTerminal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.decide(foldPayment(t, tc.given))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("event = %#v\nwant    %#v", got, tc.want)
			}
		})
	}
}

func TestPaymentEvolve(t *testing.T) {
	p := foldPayment(t, []events.Payload{initiated, events.PaymentFailedV1{PaymentID: pid, Code: events.CodeInsufficientFunds}})
	if p.Status != StatusFailed || p.FailureCode != events.CodeInsufficientFunds || !p.Terminal() || p.Amount != 500 {
		t.Fatalf("state = %+v", p)
	}
	// A terminal payment refuses any further terminal event in its stream.
	if _, err := p.Evolve(events.PaymentCompletedV1{PaymentID: pid}, t0); !errors.Is(err, ErrCorruptStream) {
		t.Fatalf("completed after failed: err = %v", err)
	}
	if _, err := (Payment{}).Evolve(events.PaymentCompletedV1{PaymentID: pid}, t0); !errors.Is(err, ErrCorruptStream) {
		t.Fatalf("completed before initiated: err = %v", err)
	}
}
