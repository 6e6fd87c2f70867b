package domain

import (
	"errors"
	"testing"
	"time"

	"upi/shared/contract/events"
)

// at is a time in IST on 5 March 2026.
func at(hh, mm int) time.Time { return time.Date(2026, 3, 5, hh, mm, 0, 0, IST) }

func TestPeakWindowsMoveADebitToTheWindowsEnd(t *testing.T) {
	w, err := ParsePeakWindows("10:00-13:00,17:00-21:30,21:30-22:00")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ in, want time.Time }{
		{at(9, 59), at(9, 59)},
		{at(10, 0), at(13, 0)},
		{at(12, 59), at(13, 0)},
		{at(13, 0), at(13, 0)},
		{at(18, 15), at(22, 0)}, // windows back to back: past both
		{at(22, 0), at(22, 0)},
	} {
		if got := w.After(c.in); !got.Equal(c.want) {
			t.Errorf("After(%s) = %s, want %s", c.in.Format("15:04"), got.In(IST).Format("15:04"), c.want.Format("15:04"))
		}
	}
	if _, err := ParsePeakWindows("13:00-10:00"); err == nil {
		t.Error("a window ending before it starts was accepted")
	}
	if w, err := ParsePeakWindows("none"); err != nil || len(w) != 0 || !w.After(at(11, 0)).Equal(at(11, 0)) {
		t.Errorf("none: %v %v", w, err)
	}
	if got := DefaultPeakWindows.After(at(11, 0)); !got.Equal(at(13, 0)) {
		t.Errorf("default windows: %s", got)
	}
}

// active is an ACTIVE mandate of frequency f and rule, Rs 50 valid through March 2026 (IST).
func active(t *testing.T, f, rule string) Mandate {
	t.Helper()
	m, err := Mandate{}.Fold(
		events.MandateRequestedV1{MandateTerms: events.MandateTerms{MandateID: "m1"}, UMN: "u@b", PayerVPA: "a@b", PayeeVPA: "s@b",
			AmountPaise: 5000, AmountRule: rule, Frequency: f, ValidFrom: events.Time(time.Date(2026, 3, 1, 0, 0, 0, 0, IST)),
			ValidUntil: events.Time(time.Date(2026, 4, 1, 0, 0, 0, 0, IST)), Revocable: true, Purpose: "p",
			ExpiresAt: events.Time(at(23, 0))},
		events.MandateApprovedV1{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNotificationsFollowTheMandatesRules(t *testing.T) {
	rules := DefaultMandateRules
	rules.Peak = PeakWindows{}
	now := at(8, 0)
	day := 24 * time.Hour
	for _, c := range []struct {
		name      string
		freq      string
		rule      string
		amount    int64
		debitAt   time.Time
		before    []time.Time // debits already notified
		want      error
		needsAuth bool
	}{
		{name: "ok", freq: "MONTHLY", rule: "MAX", amount: 5000, debitAt: now.Add(day)},
		{name: "notice", freq: "MONTHLY", rule: "MAX", amount: 5000, debitAt: now.Add(day - time.Minute), want: ErrDebitNoticeTooShort},
		{name: "above max", freq: "MONTHLY", rule: "MAX", amount: 5001, debitAt: now.Add(day), want: ErrDebitAboveMax},
		{name: "not exact", freq: "MONTHLY", rule: "EXACT", amount: 4999, debitAt: now.Add(day), want: ErrDebitNotExact},
		{name: "after validity", freq: "MONTHLY", rule: "MAX", amount: 100, debitAt: time.Date(2026, 4, 1, 0, 0, 0, 0, IST), want: ErrDebitOutsideValidity},
		{name: "second in the month", freq: "MONTHLY", rule: "MAX", amount: 100, debitAt: now.Add(3 * day), before: []time.Time{now.Add(day)}, want: ErrDebitFrequency},
		{name: "next week", freq: "WEEKLY", rule: "MAX", amount: 100, debitAt: time.Date(2026, 3, 8, 0, 0, 0, 0, IST), before: []time.Time{now.Add(day)}},
		{name: "same week", freq: "WEEKLY", rule: "MAX", amount: 100, debitAt: time.Date(2026, 3, 7, 23, 0, 0, 0, IST), before: []time.Time{now.Add(day)}, want: ErrDebitFrequency},
		{name: "daily", freq: "DAILY", rule: "MAX", amount: 100, debitAt: now.Add(2 * day), before: []time.Time{now.Add(day)}},
		{name: "one time", freq: "ONETIME", rule: "MAX", amount: 100, debitAt: now.Add(20 * day), before: []time.Time{now.Add(day)}, want: ErrDebitFrequency},
		{name: "as presented", freq: "ASPRESENTED", rule: "MAX", amount: 100, debitAt: now.Add(day), before: []time.Time{now.Add(day), now.Add(day)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := active(t, c.freq, c.rule)
			for i, b := range c.before {
				n, err := m.Notify(string(rune('a'+i)), 100, b, "shop", rules, now)
				if err != nil {
					t.Fatal(err)
				}
				if m, err = m.Fold(n); err != nil {
					t.Fatal(err)
				}
			}
			_, err := m.Notify("n", c.amount, c.debitAt, "shop", rules, now)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("Notify: %v, want %v", err, c.want)
			}
		})
	}
	// A paused or revoked mandate refuses notifications with its own code.
	m := active(t, "MONTHLY", "MAX")
	paused, _ := m.Fold(events.MandatePausedV1{})
	if _, err := paused.Notify("n", 100, now.Add(day), "shop", rules, now); !errors.Is(err, ErrMandatePaused) {
		t.Errorf("paused: %v", err)
	}
	revoked, _ := m.Fold(events.MandateRevokedV1{})
	if _, err := revoked.Notify("n", 100, now.Add(day), "shop", rules, now); !errors.Is(err, ErrMandateRevoked) {
		t.Errorf("revoked: %v", err)
	}
}

func TestAdvanceRunsRetriesAndEndsADebit(t *testing.T) {
	rules := DefaultMandateRules
	rules.Peak, rules.Retries, rules.NoAuthLimitPaise = PeakWindows{}, 1, 4000
	now := at(8, 0)
	debitAt := now.Add(25 * time.Hour)
	m := active(t, "ASPRESENTED", "MAX")
	n, err := m.Notify("n", 3000, debitAt, "shop", rules, now)
	if err != nil || n.NeedsApproval {
		t.Fatalf("notify: %+v %v", n, err)
	}
	m, _ = m.Fold(n)
	pid := func(a int) string { return "p" + string(rune('0'+a)) }
	step := func(at time.Time, out PaymentOutcome) []events.Payload {
		t.Helper()
		ps, err := m.Advance("n", at, rules, pid, out)
		if err != nil {
			t.Fatal(err)
		}
		if m, err = m.Fold(ps...); err != nil {
			t.Fatal(err)
		}
		return ps
	}
	if ps := step(debitAt.Add(-time.Second), PaymentOutcome{}); len(ps) != 0 {
		t.Fatalf("before debit_at: %v", ps)
	}
	if ps := step(debitAt, PaymentOutcome{}); len(ps) != 1 || ps[0].(events.MandateDebitAttemptedV1).PaymentID != "p1" {
		t.Fatalf("at debit_at: %v", ps)
	}
	if ps := step(debitAt, PaymentOutcome{}); len(ps) != 0 { // the payment still runs
		t.Fatalf("while running: %v", ps)
	}
	ps := step(debitAt.Add(time.Minute), PaymentOutcome{Ended: true, Code: events.CodeInsufficientFunds})
	retry, ok := ps[0].(events.MandateDebitRetryScheduledV1)
	if !ok || retry.RetryAt != events.Time(debitAt.Add(time.Minute+rules.RetryInterval)) {
		t.Fatalf("after a failure for funds: %v", ps)
	}
	if ps := step(debitAt.Add(rules.RetryInterval+time.Minute), PaymentOutcome{}); ps[0].(events.MandateDebitAttemptedV1).Attempt != 2 {
		t.Fatalf("retry: %v", ps)
	}
	ps = step(debitAt.Add(rules.RetryInterval+2*time.Minute), PaymentOutcome{Ended: true, Code: events.CodeInsufficientFunds})
	if f, ok := ps[0].(events.MandateDebitFailedV1); !ok || f.Code != events.CodeInsufficientFunds || f.Attempt != 2 {
		t.Fatalf("retries exhausted: %v", ps)
	}

	// Above the no-authentication limit: fails at its deadline without the payer's approval.
	big, err := m.Notify("big", 5000, debitAt, "shop", rules, now)
	if err != nil || !big.NeedsApproval {
		t.Fatalf("notify big: %+v %v", big, err)
	}
	m, _ = m.Fold(big)
	if ps, _ := m.Advance("big", debitAt, rules, pid, PaymentOutcome{}); len(ps) != 0 {
		t.Fatalf("unapproved before its deadline: %v", ps)
	}
	ps, _ = m.Advance("big", debitAt.Add(rules.ApprovalWait), rules, pid, PaymentOutcome{})
	if f, ok := ps[0].(events.MandateDebitFailedV1); !ok || f.Code != CodeDebitNotApproved {
		t.Fatalf("unapproved at its deadline: %v", ps)
	}
}
