package domain

import (
	"errors"
	"testing"
	"time"

	"upi/shared/contract/events"
	"upi/shared/contract/money"
)

func TestReserveRefund(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	completed := func(payeeType string, extra ...events.Payload) Payment {
		p := Payment{}
		evs := append([]events.Payload{
			events.PaymentInitiatedV1{PaymentID: "p", PayerVPA: "a@x", PayeeVPA: "shop@x", AmountPaise: 1000, PayeeType: payeeType},
			events.PaymentCompletedV1{PaymentID: "p"},
		}, extra...)
		for _, e := range evs {
			var err error
			if p, err = p.Evolve(e, t0); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	reserved := func(id string, amount int64) events.Payload {
		return events.RefundReservedV1{RefundTerms: events.RefundTerms{RefundID: id, PaymentID: "p", AmountPaise: amount}}
	}
	settled := func(id, status string) events.Payload {
		return events.RefundSettledV1{RefundTerms: events.RefundTerms{RefundID: id, PaymentID: "p"}, Status: status}
	}
	amount := func(n int64) money.Amount { a, _ := money.NewAmount(n, 1_000_000); return a }
	pending := Payment{}
	pending, _ = pending.Evolve(events.PaymentInitiatedV1{PaymentID: "p", PayeeVPA: "shop@x", AmountPaise: 1000, PayeeType: events.AccountEntity}, t0)
	tests := []struct {
		name    string
		p       Payment
		amount  int64
		at      time.Time
		want    error
		refunds money.Paise
	}{
		{"first part", completed(events.AccountEntity), 600, t0, nil, 0},
		{"the rest", completed(events.AccountEntity, reserved("r1", 600)), 400, t0, nil, 0},
		{"past the amount with one pending", completed(events.AccountEntity, reserved("r1", 600)), 401, t0, ErrRefundExceeds, 0},
		{"past the amount with one completed", completed(events.AccountEntity, reserved("r1", 600), settled("r1", events.RefundStatusCompleted)), 401, t0, ErrRefundExceeds, 600},
		{"a failed refund releases its reservation", completed(events.AccountEntity, reserved("r1", 600), settled("r1", events.RefundStatusFailed)), 1000, t0, nil, 0},
		{"payment to a person", completed(""), 100, t0, ErrRefundNotAllowed, 0},
		{"payment not completed", pending, 100, t0, ErrPaymentNotCompleted, 0},
		{"window closed", completed(events.AccountEntity), 100, t0.Add(181 * 24 * time.Hour), ErrRefundWindowClosed, 0},
		{"unknown payment", Payment{}, 100, t0, ErrPaymentNotFound, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.p.RefundedPaise != tt.refunds {
				t.Fatalf("refunded %d, want %d", tt.p.RefundedPaise, tt.refunds)
			}
			_, err := tt.p.ReserveRefund(RequestRefund{ID: "new", Amount: amount(tt.amount), At: tt.at, Window: 180 * 24 * time.Hour})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRefundDebitIsOutsideLimitsAndRejectsWithoutFunds(t *testing.T) {
	a := Account{VPA: "shop@x", Opened: true, Balance: 500}
	terms := events.RefundTerms{RefundID: "r", PaymentID: "p", PayerVPA: "a@x", PayeeVPA: "shop@x", AmountPaise: 600}
	got, err := a.RefundDebit(terms, rrnOf("rrn"))
	if err != nil {
		t.Fatal(err)
	}
	if rej, ok := got.(events.RefundDebitRejectedV1); !ok || rej.Code != events.CodeInsufficientFunds {
		t.Fatalf("got %#v, want a rejection for insufficient funds", got)
	}
	terms.AmountPaise = 500
	got, _ = a.RefundDebit(terms, rrnOf("rrn"))
	debited, ok := got.(events.RefundDebitedV1)
	if !ok || debited.BalanceAfterPaise != 0 {
		t.Fatalf("got %#v, want a debit to 0", got)
	}
	after, err := a.Evolve(debited, time.Now())
	if err != nil || after.Balance != 0 || len(after.Window) != 0 {
		t.Fatalf("after %+v, %v: want balance 0 and an empty window", after, err)
	}
}
