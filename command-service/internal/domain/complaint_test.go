package domain_test

import (
	"errors"
	"testing"
	"time"

	"upi/command-service/internal/domain"
	"upi/shared/contract/events"
)

func TestComplaintsAreAnsweredFromThePaymentsHistory(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	paid := events.PaymentInitiatedV1{PaymentID: "p", PayerVPA: "a@x", PayeeVPA: "shop@y", AmountPaise: 500, PayeeType: events.AccountEntity}
	toPerson := paid
	toPerson.PayeeType = ""
	h := func(p events.PaymentInitiatedV1, debit, settle, done string) domain.PaymentHistory {
		return domain.PaymentHistory{Initiated: p, InitiatedAt: now.Add(-time.Hour), Debit: debit, Settle: settle, Done: done}
	}
	completed := h(paid, events.AccountDebited, events.AccountCredited, events.PaymentCompleted)
	cases := []struct {
		name     string
		state    domain.Complaints
		reason   string
		history  domain.PaymentHistory
		at       time.Time
		status   string // of the resolution; "" when it stays raised
		code     string
		due, err bool
		wantErr  error
	}{
		{name: "failed and reversed", reason: "U005", history: h(paid, events.AccountDebited, events.DebitReversed, events.PaymentFailed), status: "RESOLVED", code: "102"},
		{name: "never debited", reason: "U009", history: h(paid, events.DebitRejected, "", events.PaymentFailed), status: "RESOLVED", code: "144"},
		{name: "credited", reason: "U010", history: completed, status: "RESOLVED", code: "107"},
		{name: "a merchant dispute on a failed payment", reason: "U008", history: h(paid, events.DebitRejected, "", events.PaymentFailed), status: "RESOLVED", code: "144"},
		{name: "in flight", reason: "U022", history: h(paid, events.AccountDebited, "", "")},
		{name: "a dispute goes to the merchant", reason: "U023", history: completed, due: true},
		{name: "a dispute with no merchant", reason: "U021", history: h(toPerson, events.AccountDebited, events.AccountCredited, events.PaymentCompleted), status: "REJECTED", code: "NOT_A_MERCHANT_PAYMENT"},
		{name: "a dispute on a payment in flight", reason: "U008", history: h(paid, events.AccountDebited, "", ""), wantErr: domain.ErrPaymentNotCompleted},
		{name: "one open per payment", state: domain.Complaints{Open: &events.ComplaintRaisedV1{}}, reason: "U010", history: completed, wantErr: domain.ErrComplaintExists},
		{name: "past the window", reason: "U010", history: completed, at: now.Add(46 * 24 * time.Hour), wantErr: domain.ErrComplaintWindowClosed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			at := c.at
			if at.IsZero() {
				at = now
			}
			out, err := c.state.Raise(domain.RaiseComplaint{ID: "c", Reason: c.reason, Client: "k", At: at,
				Window: 45 * 24 * time.Hour, TAT: 24 * time.Hour}, c.history)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("error %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			raised := out[0].(events.ComplaintRaisedV1)
			if (raised.DueAt != "") != c.due {
				t.Errorf("due_at %q", raised.DueAt)
			}
			if c.status == "" {
				if len(out) != 1 {
					t.Fatalf("resolved at once: %+v", out)
				}
				return
			}
			if len(out) != 2 {
				t.Fatalf("not resolved at once: %+v", out)
			}
			if r := out[1].(events.ComplaintResolvedV1); r.Status != c.status || r.Resolution != c.code {
				t.Errorf("resolved %s %s, want %s %s", r.Status, r.Resolution, c.status, c.code)
			}
		})
	}
}
