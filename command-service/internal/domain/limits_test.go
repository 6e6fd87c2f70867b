package domain

import (
	"reflect"
	"testing"
	"time"

	"upi/shared/contract/events"
	"upi/shared/contract/money"
)

// history folds an opening at `opened` and one debit of amount to a payee of payeeType at each time.
func history(t *testing.T, opened time.Time, amount int64, payeeType string, at ...time.Time) Account {
	t.Helper()
	a, err := Account{}.Evolve(events.AccountOpenedV1{VPA: "alice@bank", HolderName: "Alice", OwnerClientID: "psp-a"}, opened)
	if err != nil {
		t.Fatal(err)
	}
	balance := int64(1_000_000_000)
	if a, err = a.Evolve(events.FundsDepositedV1{VPA: "alice@bank", AmountPaise: balance, BalanceAfterPaise: balance}, opened); err != nil {
		t.Fatal(err)
	}
	for _, when := range at {
		balance -= amount
		if a, err = a.Evolve(events.AccountDebitedV1{VPA: "alice@bank", PaymentID: "p", AmountPaise: amount,
			BalanceAfterPaise: balance, PayeeType: payeeType}, when); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func times(from time.Time, n int, step time.Duration) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = from.Add(time.Duration(i) * step)
	}
	return out
}

func TestDebitLimits(t *testing.T) {
	old := t0.Add(-48 * time.Hour) // an account past its first day
	limits := Limits{DailyPaise: 10_000_000, DailyP2PCount: 10, NewAccountPaise: 500_000}
	pay := func(amount int64, payeeType string) Payment {
		return Payment{ID: "p", Payer: "alice@bank", Payee: "bob@bank", Amount: money.Paise(amount),
			Status: StatusPending, PayeeType: payeeType}
	}
	for _, tc := range []struct {
		name   string
		a      Account
		p      Payment
		limits Limits
		at     time.Time
		want   string // failure code, "" for a debit
	}{
		{"tenth payment to a person", history(t, old, 100, "", times(t0, 9, time.Minute)...), pay(100, events.AccountPerson), limits, t0.Add(time.Hour), ""},
		{"eleventh payment to a person", history(t, old, 100, events.AccountPerson, times(t0, 10, time.Minute)...), pay(100, events.AccountPerson), limits, t0.Add(time.Hour), events.CodeCountLimitExceeded},
		{"eleventh payment, to an entity", history(t, old, 100, events.AccountPerson, times(t0, 10, time.Minute)...), pay(100, events.AccountEntity), limits, t0.Add(time.Hour), ""},
		{"payments to entities do not count", history(t, old, 100, events.AccountEntity, times(t0, 30, time.Minute)...), pay(100, events.AccountPerson), limits, t0.Add(time.Hour), ""},
		{"count limit off", history(t, old, 100, "", times(t0, 10, time.Minute)...), pay(100, ""), Limits{}, t0.Add(time.Hour), ""},
		{"a day later the window is empty", history(t, old, 100, "", times(t0, 10, time.Minute)...), pay(100, ""), limits, t0.Add(Day + 11*time.Minute), ""},
		{"within the day the window holds", history(t, old, 100, "", times(t0, 10, time.Minute)...), pay(100, ""), limits, t0.Add(Day - time.Minute), events.CodeCountLimitExceeded},
		{"daily amount reached exactly", history(t, old, 5_000_000, events.AccountEntity, t0), pay(5_000_000, events.AccountEntity), limits, t0.Add(time.Hour), ""},
		{"daily amount passed", history(t, old, 5_000_000, events.AccountEntity, t0), pay(5_000_001, events.AccountEntity), limits, t0.Add(time.Hour), events.CodeDailyLimitExceeded},
		{"daily limit off", history(t, old, 5_000_000, events.AccountEntity, t0), pay(5_000_001, events.AccountEntity), Limits{DailyP2PCount: 10}, t0.Add(time.Hour), ""},
		{"new account within its amount", history(t, t0, 400_000, "", t0), pay(100_000, ""), limits, t0.Add(time.Hour), ""},
		{"new account past its amount", history(t, t0, 400_000, "", t0), pay(100_001, ""), limits, t0.Add(time.Hour), events.CodeNewAccountLimitExceeded},
		{"new account limit ends after a day", history(t, t0, 400_000, "", t0), pay(200_000, ""), limits, t0.Add(Day + 2*time.Minute), ""},
		{"limits before funds", history(t, old, 100, "", times(t0, 10, time.Minute)...), pay(2_000_000_000, ""), limits, t0.Add(time.Hour), events.CodeDailyLimitExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.a.Debit(tc.p, DebitTerms{At: tc.at, Limits: tc.limits, RRN: rrnOf("612345000001")})
			if err != nil {
				t.Fatal(err)
			}
			switch e := got.(type) {
			case events.AccountDebitedV1:
				if tc.want != "" {
					t.Fatalf("debited, want %s", tc.want)
				}
				if e.RRN != "612345000001" || e.PayeeType != tc.p.PayeeType {
					t.Fatalf("debit = %+v", e)
				}
			case events.DebitRejectedV1:
				if e.Code != tc.want {
					t.Fatalf("rejected with %s, want %q", e.Code, tc.want)
				}
			}
		})
	}
}

// A reversal nets its debit out of the window; evolving never writes to the window of the given state.
func TestWindowReversalAndCopyOnWrite(t *testing.T) {
	old := t0.Add(-48 * time.Hour)
	a := history(t, old, 100, "", times(t0, 10, time.Second)...) // ten debits in one minute
	before := append(Window(nil), a.Window...)
	reversed, err := a.Evolve(events.DebitReversedV1{VPA: "alice@bank", PaymentID: "p", AmountPaise: 100,
		BalanceAfterPaise: int64(a.Balance) + 100, DebitedAt: &t0}, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Window, before) {
		t.Fatalf("evolve wrote to the given state's window: %v, was %v", a.Window, before)
	}
	if paise, n := reversed.Window.Totals(t0.Add(time.Hour)); paise != 900 || n != 9 {
		t.Fatalf("after the reversal the window holds %d paise, %d payments; want 900, 9", paise, n)
	}
	got, _ := reversed.Debit(Payment{ID: "q", Payer: "alice@bank", Payee: "bob@bank", Amount: 1, Status: StatusPending},
		DebitTerms{At: t0.Add(time.Hour), Limits: Limits{DailyP2PCount: 10}, RRN: rrnOf("612345000002")})
	if _, ok := got.(events.AccountDebitedV1); !ok {
		t.Fatalf("the reversed payment still counts: %+v", got)
	}
	// Two states evolved from one keep their own windows.
	x, _ := a.Evolve(events.AccountDebitedV1{VPA: "alice@bank", AmountPaise: 1, BalanceAfterPaise: int64(a.Balance) - 1}, t0.Add(2*time.Minute))
	y, _ := a.Evolve(events.AccountDebitedV1{VPA: "alice@bank", AmountPaise: 2, BalanceAfterPaise: int64(a.Balance) - 2}, t0.Add(2*time.Minute))
	if px, _ := x.Window.Totals(t0.Add(time.Hour)); px != 1001 {
		t.Fatalf("x window = %d paise, want 1001", px)
	}
	if py, _ := y.Window.Totals(t0.Add(time.Hour)); py != 1002 {
		t.Fatalf("y window = %d paise, want 1002", py)
	}
	// Old buckets are pruned as the window moves on.
	later, _ := x.Evolve(events.AccountDebitedV1{VPA: "alice@bank", AmountPaise: 1, BalanceAfterPaise: int64(x.Balance) - 1}, t0.Add(2*Day))
	if len(later.Window) != 1 {
		t.Fatalf("window after two days = %v, want one bucket", later.Window)
	}
}

func TestRRN(t *testing.T) {
	// 2026-02-03 20:10 UTC is 2026-02-04 01:40 in India: year digit 6, day 035, hour 01.
	if got := RRN(time.Date(2026, 2, 3, 20, 10, 0, 0, time.UTC), 1_000_042); got != "603501000042" {
		t.Fatalf("RRN = %s", got)
	}
}
