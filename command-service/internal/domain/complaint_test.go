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

// fold builds a complaint stream's state from its events.
func fold(t *testing.T, evs ...events.Payload) domain.Complaints {
	t.Helper()
	var c domain.Complaints
	for _, e := range evs {
		var err error
		if c, err = c.Evolve(e); err != nil {
			t.Fatalf("evolve %s: %v", e.EventType(), err)
		}
	}
	return c
}

func TestDisputesAreAnsweredByTheMerchantOrChargedBack(t *testing.T) {
	raisedAt := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	due := raisedAt.Add(24 * time.Hour)
	terms := events.ComplaintTerms{ComplaintID: "c", PaymentID: "p", PayerVPA: "a@x", PayeeVPA: "shop@y", AmountPaise: 500, Reason: "U008"}
	raised := events.ComplaintRaisedV1{ComplaintTerms: terms, DueAt: events.Time(due)}
	fromLog := events.ComplaintRaisedV1{ComplaintTerms: terms}
	refund := domain.Refunding{ID: "r1", Amount: 500}
	settled := events.ComplaintSettlementV1{ComplaintTerms: terms, RefundID: "r1", RefundAmountPaise: 500, Attempt: 1}
	accepted := events.ComplaintAcceptedV1{ComplaintSettlementV1: settled, ClientID: "shop-psp"}
	charged := events.ChargebackRaisedV1{ComplaintSettlementV1: settled}
	resolved := func(status, code string) events.ComplaintResolvedV1 {
		return events.ComplaintResolvedV1{ComplaintTerms: terms, Status: status, Resolution: code}
	}
	rejected := resolved("REJECTED", "MERCHANT_REJECTED")
	cases := []struct {
		name    string
		history []events.Payload
		do      string // accept, reject, chargeback
		at      time.Time
		refund  domain.Refunding
		want    []string // event types, then the resolution's status and code
		code    string
		wantErr error
	}{
		{name: "accept in time", history: []events.Payload{raised}, do: "accept", at: raisedAt.Add(time.Hour), refund: refund,
			want: []string{events.ComplaintAccepted, events.ComplaintResolved}, code: "RET"},
		{name: "accept with nothing left to refund", history: []events.Payload{raised}, do: "accept", at: raisedAt.Add(time.Hour),
			want: []string{events.ComplaintAccepted, events.ComplaintResolved}, code: "RET"},
		{name: "reject in time", history: []events.Payload{raised}, do: "reject", at: raisedAt.Add(time.Hour),
			want: []string{events.ComplaintResolved}, code: "MERCHANT_REJECTED"},
		{name: "accept at due_at", history: []events.Payload{raised}, do: "accept", at: due, wantErr: domain.ErrComplaintTATPassed},
		{name: "reject after due_at", history: []events.Payload{raised}, do: "reject", at: due.Add(time.Second), wantErr: domain.ErrComplaintTATPassed},
		{name: "accept after the chargeback", history: []events.Payload{raised, charged, resolved("RESOLVED", "CHARGEBACK")}, do: "accept",
			at: raisedAt.Add(time.Hour), wantErr: domain.ErrComplaintTATPassed},
		{name: "accept after a rejection", history: []events.Payload{raised, rejected}, do: "accept", at: raisedAt.Add(time.Hour), wantErr: domain.ErrComplaintClosed},
		{name: "reject after an accept", history: []events.Payload{raised, accepted, resolved("RESOLVED", "RET")}, do: "reject", at: raisedAt.Add(time.Hour), wantErr: domain.ErrComplaintClosed},
		{name: "accept again", history: []events.Payload{raised, accepted, resolved("RESOLVED", "RET")}, do: "accept", at: raisedAt.Add(time.Hour)},
		{name: "reject again", history: []events.Payload{raised, rejected}, do: "reject", at: raisedAt.Add(time.Hour)},
		{name: "accept a complaint the log answers", history: []events.Payload{fromLog}, do: "accept", at: raisedAt, wantErr: domain.ErrComplaintNotDispute},
		{name: "accept a complaint not open", do: "accept", at: raisedAt, wantErr: domain.ErrComplaintClosed},
		{name: "chargeback past due_at", history: []events.Payload{raised}, do: "chargeback", at: due, refund: refund,
			want: []string{events.ChargebackRaised, events.ComplaintResolved}, code: "CHARGEBACK"},
		{name: "chargeback within the TAT", history: []events.Payload{raised}, do: "chargeback", at: due.Add(-time.Second), wantErr: domain.ErrComplaintNotDue},
		{name: "chargeback after an accept", history: []events.Payload{raised, accepted, resolved("RESOLVED", "RET")}, do: "chargeback", at: due, wantErr: domain.ErrComplaintClosed},
		{name: "chargeback after a rejection", history: []events.Payload{raised, rejected}, do: "chargeback", at: due, wantErr: domain.ErrComplaintClosed},
		{name: "chargeback again", history: []events.Payload{raised, charged, resolved("RESOLVED", "CHARGEBACK")}, do: "chargeback", at: due},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			state := fold(t, c.history...)
			var out []events.Payload
			var err error
			switch c.do {
			case "chargeback":
				out, err = state.Chargeback("c", c.at, c.refund)
			default:
				out, err = state.Answer(domain.MerchantAnswer{ID: "c", Client: "shop-psp", Note: "why", Reject: c.do == "reject", At: c.at}, c.refund)
			}
			if c.wantErr != nil || err != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("error %v, want %v", err, c.wantErr)
				}
				return
			}
			if len(out) != len(c.want) {
				t.Fatalf("%d events, want %v", len(out), c.want)
			}
			for i, p := range out {
				if p.EventType() != c.want[i] {
					t.Fatalf("event %d is %s, want %s", i, p.EventType(), c.want[i])
				}
			}
			if len(out) == 0 {
				return // answered so before: replayed
			}
			r := out[len(out)-1].(events.ComplaintResolvedV1)
			if r.Resolution != c.code || r.ComplaintID != "c" {
				t.Errorf("resolution %+v, want code %s", r, c.code)
			}
			if len(out) == 2 {
				s, _ := events.Complaint(out[0])
				if s.ComplaintID != "c" {
					t.Errorf("settlement of %q", s.ComplaintID)
				}
			}
			if c.refund.ID != "" && len(out) == 2 {
				var got events.ComplaintSettlementV1
				switch p := out[0].(type) {
				case events.ComplaintAcceptedV1:
					got = p.ComplaintSettlementV1
				case events.ChargebackRaisedV1:
					got = p.ComplaintSettlementV1
				}
				if got.RefundID != "r1" || got.RefundAmountPaise != 500 || got.Attempt != 1 {
					t.Errorf("settlement %+v", got)
				}
			}
			// The decision folds into the stream: nothing is left open.
			after := fold(t, append(append([]events.Payload{}, c.history...), out...)...)
			if after.Open != nil {
				t.Errorf("still open after %s", c.name)
			}
		})
	}
}

func TestAFailedSettlementRefundIsTriedAgainWithTheNextAttempt(t *testing.T) {
	terms := events.ComplaintTerms{ComplaintID: "c", PaymentID: "p", AmountPaise: 500, Reason: "U023"}
	raised := events.ComplaintRaisedV1{ComplaintTerms: terms, DueAt: events.Time(time.Now())}
	charged := events.ChargebackRaisedV1{ComplaintSettlementV1: events.ComplaintSettlementV1{ComplaintTerms: terms, RefundID: "r1", RefundAmountPaise: 500, Attempt: 1}}
	closed := events.ComplaintResolvedV1{ComplaintTerms: terms, Status: "RESOLVED", Resolution: "CHARGEBACK"}
	state := fold(t, raised, charged, closed)

	if _, err := state.Retry("c", "r0", domain.Refunding{ID: "r2", Amount: 500}); !errors.Is(err, domain.ErrComplaintClosed) {
		t.Errorf("a retry of a refund that is not the latest: %v", err)
	}
	if _, err := state.Retry("other", "r1", domain.Refunding{ID: "r2", Amount: 500}); !errors.Is(err, domain.ErrComplaintNotFound) {
		t.Errorf("a retry of a complaint never settled: %v", err)
	}
	if _, err := state.Retry("c", "r1", domain.Refunding{}); !errors.Is(err, domain.ErrRefundExceeds) {
		t.Errorf("a retry with nothing reserved: %v", err)
	}
	retried, err := state.Retry("c", "r1", domain.Refunding{ID: "r2", Amount: 400})
	if err != nil {
		t.Fatal(err)
	}
	if retried.Attempt != 2 || retried.RefundID != "r2" || retried.RefundAmountPaise != 400 || !retried.Chargeback || retried.Reason != "U023" {
		t.Errorf("retry %+v", retried)
	}
	state = fold(t, raised, charged, closed, retried)
	if a := state.Answers["c"]; a.RefundID != "r2" || a.Attempt != 2 || !a.Chargeback() {
		t.Errorf("after the retry: %+v", a)
	}
	// The same attempt again is out of turn on the stream.
	if _, err := state.Evolve(retried); !errors.Is(err, domain.ErrCorruptStream) {
		t.Errorf("attempt 2 folded twice: %v", err)
	}
	// A settlement of a complaint that is not open corrupts the stream.
	if _, err := (domain.Complaints{}).Evolve(charged); !errors.Is(err, domain.ErrCorruptStream) {
		t.Errorf("a chargeback of a complaint not open: %v", err)
	}
}
