package app_test

import (
	"context"
	"testing"

	"upi/command-service/internal/app"
	"upi/command-service/internal/domain"
	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/money"
	"upi/shared/contract/vpa"
	"upi/testenv"
)

// TestCommandOutlivesItsCaller: a caller that gives up (its context cancelled) does not abort a command
// midway; the command runs to its own end, so a long stream's one cold load still gets to write its
// snapshot, and a retry finds the outcome.
func TestCommandOutlivesItsCaller(t *testing.T) {
	pool, _ := testenv.PostgresPool(t)
	store := app.NewStore(pool)
	svc := app.New(store, domain.Limits{})
	gone, cancel := context.WithCancel(context.Background())
	cancel()

	c := app.Caller{ClientID: "psp-a", IdempotencyKey: "k"}
	if _, _, err := svc.OpenAccount(gone, c, contract.OpenAccount{VPA: vpa.MustParse("alice@okbank"), HolderName: "Alice"}); err != nil {
		t.Fatalf("open with a cancelled caller: %v", err)
	}
	if _, _, err := svc.OpenAccount(gone, app.Caller{ClientID: "psp-b", IdempotencyKey: "k"},
		contract.OpenAccount{VPA: vpa.MustParse("bob@okbank"), HolderName: "Bob"}); err != nil {
		t.Fatal(err)
	}
	amount, _ := money.NewAmount(500, 0)
	c.IdempotencyKey = "d"
	if _, _, err := svc.Deposit(gone, c, contract.DepositCommand{VPA: vpa.MustParse("alice@okbank"), Amount: amount, Reference: "r"}); err != nil {
		t.Fatal(err)
	}
	c.IdempotencyKey = "p"
	p, _, err := svc.InitiatePayment(gone, c, contract.InitiatePayment{Payer: vpa.MustParse("alice@okbank"),
		Payee: vpa.MustParse("bob@okbank"), Amount: amount})
	if err != nil {
		t.Fatal(err)
	}
	out, err := svc.Steps(gone, app.Caller{ClientID: "wf"}, []contract.Step{{PaymentID: mustUUID(t, p.PaymentID), Step: contract.StepDebit}})
	if err != nil || len(out) != 1 || out[0].Err != nil || out[0].Event.Type != events.AccountDebited {
		t.Fatalf("debit with a cancelled caller: %+v, %v", out, err)
	}
}
