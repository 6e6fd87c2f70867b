package domain

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"upi/shared/contract/events"
)

func TestErasureDecisions(t *testing.T) {
	erased := events.AccountErasedV1{VPA: "alice@bank", Operator: "dpo"}
	payeePayment := foldPayment(t, []events.Payload{events.PaymentInitiatedV1{PaymentID: pid, PayerVPA: "bob@bank",
		PayeeVPA: "alice@bank", AmountPaise: 500, ClientID: "psp-b"}})
	pending := foldPayment(t, []events.Payload{initiated})
	for _, tc := range []struct {
		name    string
		given   []events.Payload
		decide  func(a Account) (events.Payload, error)
		want    events.Payload
		wantErr error
	}{
		{name: "erase an empty account", given: []events.Payload{opened},
			decide: func(a Account) (events.Payload, error) { return a.Erase("dpo", false) }, want: erased},
		{name: "erase an account emptied again", given: []events.Payload{opened, deposit(700, 700),
			events.FundsWithdrawnV1{VPA: "alice@bank", AmountPaise: 700, BalanceAfterPaise: 0}},
			decide: func(a Account) (events.Payload, error) { return a.Erase("dpo", false) }, want: erased},
		{name: "erase an account with money", given: []events.Payload{opened, deposit(700, 700)},
			decide:  func(a Account) (events.Payload, error) { return a.Erase("dpo", false) },
			wantErr: ErrAccountNotEmpty},
		{name: "erase an account with a debit in flight", given: []events.Payload{opened},
			decide:  func(a Account) (events.Payload, error) { return a.Erase("dpo", true) },
			wantErr: ErrAccountInFlight},
		{name: "erase an unknown account",
			decide:  func(a Account) (events.Payload, error) { return a.Erase("dpo", false) },
			wantErr: ErrAccountNotFound},
		{name: "erase twice", given: []events.Payload{opened, erased},
			decide:  func(a Account) (events.Payload, error) { return a.Erase("dpo", false) },
			wantErr: ErrAccountClosed},
		{name: "deposit into an erased account", given: []events.Payload{opened, erased},
			decide: func(a Account) (events.Payload, error) {
				return a.Deposit("psp-a", amount(t, 100), "late", DepositTerms{At: t0})
			},
			wantErr: ErrAccountClosed},
		{name: "withdraw from an erased account", given: []events.Payload{opened, erased},
			decide: func(a Account) (events.Payload, error) {
				return a.Withdraw(Withdrawal{ID: "w", Client: "psp-a", Amount: amount(t, 100), Reference: "r"})
			},
			wantErr: ErrAccountClosed},
		{name: "debit an erased payer: rejected, no money moves", given: []events.Payload{opened, erased},
			decide: func(a Account) (events.Payload, error) {
				return a.Debit(pending, DebitTerms{At: t0.Add(time.Hour), RRN: func() (string, error) {
					return "", errors.New("a rejected debit takes no RRN")
				}})
			},
			want: events.DebitRejectedV1{VPA: "alice@bank", PaymentID: pid, AmountPaise: 500,
				Code: events.CodeAccountClosed, BalancePaise: 0}},
		{name: "credit an erased payee: refused (the payer's debit is reversed)", given: []events.Payload{opened, erased},
			decide:  func(a Account) (events.Payload, error) { return a.Credit(payeePayment) },
			wantErr: ErrAccountClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := foldAccount(t, tc.given)
			got, err := tc.decide(a)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
	// An erased account's state says so, and its balance stays zero.
	if a := foldAccount(t, []events.Payload{opened, erased}); !a.Closed || a.Balance != 0 {
		t.Errorf("erased account state %+v", a)
	}
}
