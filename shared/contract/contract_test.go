package contract

import (
	"strings"
	"testing"

	"upi/shared/contract/problem"
)

func TestPaymentValidate(t *testing.T) {
	l := Limits{PaymentMaxPaise: 1000, DepositMaxPaise: 5000}
	if _, p := (PaymentRequest{PayerVPA: "A@Bank", PayeeVPA: "b@bank", AmountPaise: 1000}).Validate(l); p != nil {
		t.Fatalf("valid payment refused: %v", p.Errors)
	}
	for _, r := range []PaymentRequest{
		{PayerVPA: "a@bank", PayeeVPA: "A@BANK", AmountPaise: 10},
		{PayerVPA: "a@bank", PayeeVPA: "b@bank", AmountPaise: 1001},
		{PayerVPA: "a@bank", PayeeVPA: "b@bank", AmountPaise: 0},
		{PayerVPA: "a@bank", PayeeVPA: "b@bank", AmountPaise: 10, Note: strings.Repeat("n", 101)},
		{PayerVPA: "bad", PayeeVPA: "b@bank", AmountPaise: 10},
	} {
		if _, p := r.Validate(l); p == nil || p.Code != problem.CodeValidation {
			t.Errorf("%+v accepted", r)
		}
	}
}
