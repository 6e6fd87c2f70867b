package workflow

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/platform/eventstore"
)

func event(t *testing.T, p events.Payload) eventstore.Event {
	t.Helper()
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return eventstore.Event{ID: uuid.New(), Type: p.EventType(), Payload: raw}
}

func TestNext(t *testing.T) {
	pid := uuid.New()
	p := pid.String()
	for _, tc := range []struct {
		name        string
		in          events.Payload
		wantStep    contract.StepName
		wantAccount string
		wantCode    string
	}{
		{"initiated debits the payer", events.PaymentInitiatedV1{PaymentID: p, PayerVPA: "a@x", PayeeVPA: "b@x", AmountPaise: 5}, contract.StepDebit, "a@x", ""},
		{"debited credits the payee", events.AccountDebitedV1{VPA: "a@x", PaymentID: p, AmountPaise: 5, CounterpartyVPA: "b@x"}, contract.StepCredit, "b@x", ""},
		{"rejected debit fails with its code", events.DebitRejectedV1{VPA: "a@x", PaymentID: p, Code: events.CodeInsufficientFunds}, contract.StepFail, "", events.CodeInsufficientFunds},
		{"credited completes", events.AccountCreditedV1{VPA: "b@x", PaymentID: p, AmountPaise: 5}, contract.StepComplete, "", ""},
		{"reversed fails with its code", events.DebitReversedV1{VPA: "a@x", PaymentID: p, Code: events.CodePayeeUnavailable}, contract.StepFail, "", events.CodePayeeUnavailable},
		{"deposits call for nothing", events.FundsDepositedV1{VPA: "a@x", AmountPaise: 5}, "", "", ""},
		{"openings call for nothing", events.AccountOpenedV1{VPA: "a@x"}, "", "", ""},
		{"completion ends the payment", events.PaymentCompletedV1{PaymentID: p}, "", "", ""},
		{"failure ends the payment", events.PaymentFailedV1{PaymentID: p, Code: "X"}, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := event(t, tc.in)
			a, err := Next(e)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantStep == "" {
				if a != nil {
					t.Fatalf("Next = %+v, want nothing", a)
				}
				return
			}
			if a == nil || a.Step != tc.wantStep || a.PaymentID != pid || a.CausationID != e.ID.String() {
				t.Fatalf("Next = %+v, want step %s of %s caused by %s", a, tc.wantStep, pid, e.ID)
			}
			if a.Account != tc.wantAccount || a.Code != tc.wantCode {
				t.Fatalf("Next = %+v, want account %q and code %q", a, tc.wantAccount, tc.wantCode)
			}
			if p := a.Check(); p != nil {
				t.Fatalf("Next = %+v, which the contract refuses: %v", a, p)
			}
		})
	}
}

func TestNextRefusesUnreadableEvents(t *testing.T) {
	bad := eventstore.Event{ID: uuid.New(), Type: events.AccountDebited, Payload: []byte(`{"payment_id": "not-a-uuid"}`)}
	if _, err := Next(bad); err == nil {
		t.Fatal("an unreadable payment id was accepted")
	}
	garbled := eventstore.Event{ID: uuid.New(), Type: events.PaymentInitiated, Payload: []byte(`{`)}
	if _, err := Next(garbled); err == nil {
		t.Fatal("a garbled payload was accepted")
	}
}

func TestCompensation(t *testing.T) {
	for step, want := range map[contract.StepName]contract.StepName{contract.StepDebit: contract.StepRejectDebit,
		contract.StepCredit: contract.StepReverse, contract.StepComplete: "", contract.StepFail: "", contract.StepReverse: ""} {
		got, ok := compensation(contract.Step{PaymentID: uuid.New(), Step: step, Account: "a@x"})
		if got.Step != want || ok != (want != "") {
			t.Errorf("compensation(%s) = %q, %v; want %q", step, got.Step, ok, want)
		}
		if ok && (got.Code != events.CodeProcessingError || got.Check() != nil) {
			t.Errorf("compensation(%s) = %+v", step, got)
		}
	}
}
