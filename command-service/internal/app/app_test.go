package app_test

import (
	"context"
	"errors"
	"testing"

	"upi/command-service/internal/app"
	"upi/command-service/internal/domain"
	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/money"
	"upi/shared/contract/vpa"
	"upi/testenv"
)

// TestCommandOutlivesItsCaller: a client command whose caller has gone before it ran is dropped (nothing
// is written, and a retry runs it); a workflow step does not depend on its caller at all: it runs to its
// own end, so a long stream's one cold load still gets to write its snapshot, and a retry finds the
// outcome. (A client command whose group has begun also runs to its end: the committer's tests.)
func TestCommandOutlivesItsCaller(t *testing.T) {
	pool, _ := testenv.PostgresPool(t)
	store := app.NewStore(pool)
	svc := app.New(store, domain.Limits{})
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	live := context.Background()

	c := app.Caller{ClientID: "psp-a", IdempotencyKey: "k"}
	alice := contract.OpenAccount{VPA: vpa.MustParse("alice@okbank"), HolderName: "Alice"}
	if _, _, err := svc.OpenAccount(gone, c, alice); !errors.Is(err, context.Canceled) {
		t.Fatalf("open with a caller already gone: %v, want it dropped (context.Canceled)", err)
	}
	var n int
	if err := pool.QueryRow(live, `select count(*) from events`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("a dropped command left %d events (%v)", n, err)
	}
	if _, _, err := svc.OpenAccount(live, c, alice); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	if _, _, err := svc.OpenAccount(live, app.Caller{ClientID: "psp-b", IdempotencyKey: "k"},
		contract.OpenAccount{VPA: vpa.MustParse("bob@okbank"), HolderName: "Bob"}); err != nil {
		t.Fatal(err)
	}
	amount, _ := money.NewAmount(500, 0)
	c.IdempotencyKey = "d"
	if _, _, err := svc.Deposit(live, c, contract.DepositCommand{VPA: vpa.MustParse("alice@okbank"), Amount: amount, Reference: "r"}); err != nil {
		t.Fatal(err)
	}
	c.IdempotencyKey = "p"
	p, _, err := svc.InitiatePayment(live, c, contract.InitiatePayment{Payer: vpa.MustParse("alice@okbank"),
		Payee: vpa.MustParse("bob@okbank"), Amount: amount})
	if err != nil {
		t.Fatal(err)
	}
	out, err := svc.Steps(gone, app.Caller{ClientID: "wf"}, []contract.Step{{PaymentID: mustUUID(t, p.PaymentID), Step: contract.StepDebit}})
	if err != nil || len(out) != 1 || out[0].Err != nil || out[0].Event.Type != events.AccountDebited {
		t.Fatalf("debit with a cancelled caller: %+v, %v", out, err)
	}
}
