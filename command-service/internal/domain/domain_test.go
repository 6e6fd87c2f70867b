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
			name:  "deposit by the owner",
			given: []events.Payload{opened, deposit(100, 100)},
			decide: func(a Account) (events.Payload, error) {
				return a.Deposit("psp-a", amount(t, 250), "neft-1", DepositTerms{})
			},
			want: events.FundsDepositedV1{VPA: "alice@bank", AmountPaise: 250, Reference: "neft-1", BalanceAfterPaise: 350},
		},
		{
			name:  "deposit by another client: the account does not exist for it",
			given: []events.Payload{opened},
			decide: func(a Account) (events.Payload, error) {
				return a.Deposit("psp-b", amount(t, 250), "neft-1", DepositTerms{})
			},
			wantErr: ErrAccountNotFound,
		},
		{
			name: "deposit into an unknown account",
			decide: func(a Account) (events.Payload, error) {
				return a.Deposit("psp-a", amount(t, 250), "neft-1", DepositTerms{})
			},
			wantErr: ErrAccountNotFound,
		},
		{
			name:  "deposit of the zero amount",
			given: []events.Payload{opened},
			decide: func(a Account) (events.Payload, error) {
				return a.Deposit("psp-a", money.Amount{}, "neft-1", DepositTerms{})
			},
			wantErr: ErrInvalidAmount,
		},
		{
			name:  "deposit that would overflow the balance",
			given: []events.Payload{opened, deposit(math.MaxInt64-10, math.MaxInt64-10)},
			decide: func(a Account) (events.Payload, error) {
				return a.Deposit("psp-a", amount(t, 11), "neft-1", DepositTerms{})
			},
			wantErr: ErrBalanceLimit,
		},
		{
			name:   "debit covered by the balance",
			given:  []events.Payload{opened, deposit(800, 800)},
			decide: func(a Account) (events.Payload, error) { return a.Debit(pending, DebitTerms{RRN: rrnOf("")}) },
			want: events.AccountDebitedV1{VPA: "alice@bank", PaymentID: pid, AmountPaise: 500, CounterpartyVPA: "bob@bank",
				BalanceAfterPaise: 300},
		},
		{
			name:   "debit of exactly the balance leaves zero",
			given:  []events.Payload{opened, deposit(500, 500)},
			decide: func(a Account) (events.Payload, error) { return a.Debit(pending, DebitTerms{RRN: rrnOf("")}) },
			want: events.AccountDebitedV1{VPA: "alice@bank", PaymentID: pid, AmountPaise: 500, CounterpartyVPA: "bob@bank",
				BalanceAfterPaise: 0},
		},
		{
			name:   "debit beyond the balance is a recorded rejection, not an error",
			given:  []events.Payload{opened, deposit(499, 499)},
			decide: func(a Account) (events.Payload, error) { return a.Debit(pending, DebitTerms{RRN: rrnOf("")}) },
			want: events.DebitRejectedV1{VPA: "alice@bank", PaymentID: pid, AmountPaise: 500,
				Code: events.CodeInsufficientFunds, BalancePaise: 499},
		},
		{
			name:    "debit of the wrong account",
			given:   []events.Payload{payeeOpen, events.FundsDepositedV1{VPA: "bob@bank", AmountPaise: 900, BalanceAfterPaise: 900}},
			decide:  func(a Account) (events.Payload, error) { return a.Debit(pending, DebitTerms{RRN: rrnOf("")}) },
			wantErr: ErrWrongAccount,
		},
		{
			name:    "debit of a payment never initiated",
			given:   []events.Payload{opened, deposit(900, 900)},
			decide:  func(a Account) (events.Payload, error) { return a.Debit(Payment{}, DebitTerms{RRN: rrnOf("")}) },
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
		Window:   Window{{Minute: debitedAt.Truncate(time.Minute)}},
		Deposits: Window{{Minute: t0.Truncate(time.Minute), Paise: 800, P2P: 1}}}
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

// rrnOf gives rrn as a debit's RRN.
func rrnOf(rrn string) func() (string, error) { return func() (string, error) { return rrn, nil } }

// A deposit is refused once the account's deposits of the last 24 hours would pass the daily cap; a day
// later the cap is free again.
func TestDepositDailyCap(t *testing.T) {
	a := foldAccount(t, []events.Payload{opened, deposit(800, 800)})
	terms := DepositTerms{At: t0.Add(time.Minute), DailyCap: 1000, Settlement: "settlement:bank:00"}
	got, err := a.Deposit("psp-a", amount(t, 200), "neft-2", terms)
	if err != nil || got.BalanceAfterPaise != 1000 || got.Settlement != "settlement:bank:00" {
		t.Fatalf("deposit up to the cap = %+v, %v", got, err)
	}
	if _, err := a.Deposit("psp-a", amount(t, 201), "neft-2", terms); !errors.Is(err, ErrDepositLimitExceeded) {
		t.Fatalf("deposit past the cap: err = %v, want ErrDepositLimitExceeded", err)
	}
	terms.At = t0.Add(25 * time.Hour)
	if _, err := a.Deposit("psp-a", amount(t, 1000), "neft-3", terms); err != nil {
		t.Fatalf("deposit a day later: %v", err)
	}
}

// A withdrawal takes money out with an RRN, or records its rejection without asking for one; only the
// owner may withdraw.
func TestWithdraw(t *testing.T) {
	a := foldAccount(t, []events.Payload{opened, deposit(800, 800)})
	asked := 0
	w := Withdrawal{ID: "w1", Client: "psp-a", Amount: amount(t, 300), Reference: "payout-1",
		Settlement: "settlement:bank:01", RRN: func() (string, error) { asked++; return "612345000009", nil }}
	got, err := a.Withdraw(w)
	want := events.FundsWithdrawnV1{WithdrawalID: "w1", VPA: "alice@bank", AmountPaise: 300, Reference: "payout-1",
		BalanceAfterPaise: 500, RRN: "612345000009", Settlement: "settlement:bank:01", ClientID: "psp-a"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("withdraw = %#v, %v\nwant %#v", got, err, want)
	}
	w.Amount = amount(t, 801)
	got, err = a.Withdraw(w)
	rejected, ok := got.(events.WithdrawalRejectedV1)
	if err != nil || !ok || rejected.Code != events.CodeInsufficientFunds || rejected.BalancePaise != 800 {
		t.Fatalf("withdraw past the balance = %#v, %v", got, err)
	}
	if asked != 1 {
		t.Fatalf("RRN asked %d times, want once: a rejection takes none", asked)
	}
	w.Client = "psp-b"
	if _, err := a.Withdraw(w); !errors.Is(err, ErrAccountNotFound) {
		t.Fatalf("withdraw by another client: err = %v", err)
	}
	after := foldAccount(t, []events.Payload{opened, deposit(800, 800), want, rejected})
	if after.Balance != 500 {
		t.Fatalf("balance after the withdrawal and the rejection = %d, want 500", after.Balance)
	}
}

// A settlement shard goes negative without complaint, checks its recorded balances, and keeps to its bank.
func TestSettlement(t *testing.T) {
	var s Settlement
	out, err := s.Fund(Move{Bank: "bank", VPA: "alice@bank", Leg: "d1", Amount: 800})
	if err != nil || out.BalanceAfterPaise != -800 {
		t.Fatalf("fund = %+v, %v", out, err)
	}
	s, err = s.Evolve(out, t0)
	if err != nil || s.Balance != -800 || s.Bank != "bank" {
		t.Fatalf("evolve = %+v, %v", s, err)
	}
	in, err := s.Receive(Move{Bank: "bank", VPA: "alice@bank", Leg: "w1", Amount: 300})
	if err != nil || in.BalanceAfterPaise != -500 {
		t.Fatalf("receive = %+v, %v", in, err)
	}
	if _, err := s.Receive(Move{Bank: "other", VPA: "bob@other", Leg: "w2", Amount: 1}); !errors.Is(err, ErrWrongAccount) {
		t.Fatalf("a move of another bank: err = %v", err)
	}
	forged := events.SettlementCreditedV1{SettlementMove: events.SettlementMove{Bank: "bank", AmountPaise: 1, BalanceAfterPaise: 7}}
	if _, err := s.Evolve(forged, t0); !errors.Is(err, ErrCorruptStream) {
		t.Fatalf("a move whose balance does not add up: err = %v", err)
	}
}
