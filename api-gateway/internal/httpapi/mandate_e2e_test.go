package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"upi/shared/contract"
	"upi/shared/contract/problem"
)

var ist = time.FixedZone("IST", 5*3600+30*60)

func mandateOf(t *testing.T, res *result, status int) contract.Mandate {
	t.Helper()
	var m contract.Mandate
	if res.status != status || json.Unmarshal(res.body, &m) != nil || m.MandateID == "" {
		t.Fatalf("mandate answer %d %s, want %d", res.status, res.body, status)
	}
	return m
}

func debitOf(t *testing.T, res *result, status int) contract.MandateDebit {
	t.Helper()
	var d contract.MandateDebit
	if res.status != status || json.Unmarshal(res.body, &d) != nil || d.NotificationID == "" {
		t.Fatalf("debit answer %d %s, want %d", res.status, res.body, status)
	}
	return d
}

// mandateUntil reads a mandate until ok holds, or fails after d.
func (s *upiStack) mandateUntil(key, id string, d time.Duration, what string, ok func(contract.Mandate) bool) contract.Mandate {
	s.t.Helper()
	deadline := time.Now().Add(d)
	var m contract.Mandate
	for time.Now().Before(deadline) {
		res := s.do(req{method: http.MethodGet, path: "/v1/mandates/" + id, key: key})
		if res.status == http.StatusOK && json.Unmarshal(res.body, &m) == nil && ok(m) {
			return m
		}
		time.Sleep(150 * time.Millisecond)
	}
	s.t.Fatalf("mandate %s: %+v, not %s within %s", id, m, what, d)
	return m
}

func debitIn(m contract.Mandate, id string) contract.MandateDebit {
	for _, d := range m.Debits {
		if d.NotificationID == id {
			return d
		}
	}
	return contract.MandateDebit{}
}

// TestE2EMandates drives mandates through every state and rule with short settings: requested, approved,
// declined, expired (U69), paused and resumed, revoked (not when irrevocable), completed (one-time debit
// done, validity over); notifications refused with their own codes and, racing the frequency rule
// concurrently, exactly one allowed; debits executed by themselves at debit_at as normal payments carrying
// mandate_id, one above the no-authentication limit after the payer's approval (and one failing without
// it), one retried after a failure for the payer's funds, one failing when its retries run out, one due
// in a peak window moved to the window's end; the audit trail of a mandate's history.
func TestE2EMandates(t *testing.T) {
	peakStart, peakEnd, peakOK := peakWindowTimes()
	peak := "none"
	if peakOK {
		peak = peakStart.In(ist).Format("15:04") + "-" + peakEnd.In(ist).Format("15:04")
	}
	s := newUPIStack(t, map[string]string{"LIMIT_DAILY_PAISE": "0", "LIMIT_DAILY_P2P_COUNT": "0", "LIMIT_NEW_ACCOUNT_PAISE": "0",
		"MANDATE_NOTICE": "2s", "MANDATE_RETRIES": "2", "MANDATE_RETRY_INTERVAL": "2s", "MANDATE_DEBIT_APPROVAL_WAIT": "3s",
		"MANDATE_NO_AUTH_LIMIT_PAISE": "1500000", "MANDATE_PEAK_WINDOWS": peak})
	s.open(alphaKey, "cust@okbank", "Customer", "")
	s.open(alphaKey, "poor@okbank", "Poor Customer", "")
	s.open(betaKey, "shop@okbank", "Kirana Store", `,"type":"ENTITY","mcc":"5411"`)
	s.open(betaKey, "friend@okbank", "Friend", "")
	s.deposit(alphaKey, "cust@okbank", 5_000_000)

	today := time.Now().In(ist).Format("2006-01-02")
	nextYear := time.Now().In(ist).AddDate(1, 0, 0).Format("2006-01-02")
	request := func(key, idem, payer, payee, extra string) *result {
		return s.post(key, "/v1/mandates", idem, fmt.Sprintf(`{"payer_vpa":%q,"payee_vpa":%q,"amount_paise":5000,`+
			`"amount_rule":"MAX","frequency":"MONTHLY","valid_from":%q,"valid_until":%q,"purpose":"Broadband"%s}`,
			payer, payee, today, nextYear, extra))
	}
	act := func(key, id, action, idem string) *result {
		return s.post(key, "/v1/mandates/"+id+"/"+action, idem, "")
	}
	notify := func(id, idem string, paise int64, at time.Time) *result {
		return s.post(betaKey, "/v1/mandates/"+id+"/notifications", idem,
			fmt.Sprintf(`{"amount_paise":%d,"debit_at":%q}`, paise, at.UTC().Format(time.RFC3339Nano)))
	}

	// Requested by the merchant: PENDING_APPROVAL with a UMN; not by a person, not for another's account.
	m1 := mandateOf(t, request(betaKey, "m1", "cust@okbank", "shop@okbank", ""), http.StatusCreated)
	if m1.Status != "PENDING_APPROVAL" || m1.UMN == "" || !m1.Revocable {
		t.Fatalf("requested %+v", m1)
	}
	expect(t, request(betaKey, "m-p2p", "cust@okbank", "friend@okbank", ""), http.StatusUnprocessableEntity, problem.CodeMandateNotAllowed)
	expect(t, request(alphaKey, "m-theft", "poor@okbank", "shop@okbank", ""), http.StatusNotFound, problem.CodeAccountNotFound)
	expect(t, request(betaKey, "m-irrev", "cust@okbank", "shop@okbank", `,"revocable":false`), http.StatusBadRequest, problem.CodeValidation)
	expect(t, notify(m1.MandateID, "n-early", 100, time.Now().Add(time.Hour)), http.StatusUnprocessableEntity, problem.CodeMandateNotActive)

	// Approved by the payer only (the merchant cannot see it as the payer's).
	expect(t, act(betaKey, m1.MandateID, "approve", "a-merchant"), http.StatusNotFound, problem.CodeMandateNotFound)
	if a := mandateOf(t, act(alphaKey, m1.MandateID, "approve", "a-1"), http.StatusOK); a.Status != "ACTIVE" {
		t.Fatalf("approved %+v", a)
	}
	if a := mandateOf(t, act(alphaKey, m1.MandateID, "approve", "a-again"), http.StatusOK); a.Status != "ACTIVE" || a.Position == "" {
		t.Fatalf("approved again %+v", a)
	}

	// Notifications outside the rules, each with its code.
	expect(t, notify(m1.MandateID, "n-max", 5001, time.Now().Add(time.Hour)), http.StatusUnprocessableEntity, problem.CodeDebitAboveMax)
	expect(t, notify(m1.MandateID, "n-soon", 100, time.Now().Add(500*time.Millisecond)), http.StatusUnprocessableEntity, problem.CodeDebitNoticeTooShort)
	expect(t, notify(m1.MandateID, "n-late", 100, time.Now().AddDate(2, 0, 0)), http.StatusUnprocessableEntity, problem.CodeDebitOutsideValidity)

	// Concurrent notifications racing MONTHLY: exactly one succeeds.
	debitAt := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	answers := make([]*result, 6)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = notify(m1.MandateID, fmt.Sprintf("n-race-%d", i), 4000, debitAt)
		}()
	}
	wg.Wait()
	var won []contract.MandateDebit
	for _, a := range answers {
		if a.status == http.StatusCreated {
			won = append(won, debitOf(t, a, http.StatusCreated))
		} else {
			expect(t, a, http.StatusUnprocessableEntity, problem.CodeDebitFrequency)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d notifications passed MONTHLY, want 1", len(won))
	}

	// Executed by itself at debit_at: a normal payment carrying mandate_id, for the notified amount.
	m := s.mandateUntil(betaKey, m1.MandateID, 30*time.Second, "debited", func(m contract.Mandate) bool {
		return debitIn(m, won[0].NotificationID).Status == "SUCCEEDED"
	})
	d := debitIn(m, won[0].NotificationID)
	if d.PaymentID == nil || d.Attempt != 1 {
		t.Fatalf("debit %+v", d)
	}
	p := s.settled(alphaKey, *d.PaymentID)
	completed(t, p)
	if p.MandateID != m1.MandateID || p.AmountPaise != 4000 || p.PayerVPA != "cust@okbank" || p.PayeeVPA != "shop@okbank" {
		t.Fatalf("mandate payment %+v", p)
	}
	if res := s.do(req{method: http.MethodGet, path: "/v1/payments/" + *d.PaymentID, key: betaKey}); res.status != http.StatusOK {
		t.Fatalf("the merchant cannot see the debit's payment: %d", res.status)
	}

	// Above the no-authentication limit: waits for the payer's approval, then runs; without it, fails.
	big := mandateOf(t, s.post(betaKey, "/v1/mandates", "m-big", fmt.Sprintf(`{"payer_vpa":"cust@okbank","payee_vpa":"shop@okbank",`+
		`"amount_paise":4000000,"amount_rule":"MAX","frequency":"ASPRESENTED","valid_from":%q,"valid_until":%q,"purpose":"EMI"}`,
		today, nextYear)), http.StatusCreated)
	mandateOf(t, act(alphaKey, big.MandateID, "approve", "a-big"), http.StatusOK)
	approved := debitOf(t, notify(big.MandateID, "n-big-1", 2_000_000, time.Now().Add(3*time.Second)), http.StatusCreated)
	unapproved := debitOf(t, notify(big.MandateID, "n-big-2", 1_600_000, time.Now().Add(3*time.Second)), http.StatusCreated)
	if !approved.NeedsApproval || approved.ApproveBy == "" {
		t.Fatalf("above the limit, no approval needed: %+v", approved)
	}
	small := debitOf(t, notify(big.MandateID, "n-small", 1_500_000, time.Now().Add(3*time.Second)), http.StatusCreated)
	if small.NeedsApproval {
		t.Fatalf("at the limit, approval needed: %+v", small)
	}
	expect(t, s.post(alphaKey, "/v1/mandates/"+big.MandateID+"/notifications/"+small.NotificationID+"/approve", "ad-small", ""),
		http.StatusUnprocessableEntity, problem.CodeDebitNoApproval)
	expect(t, s.post(betaKey, "/v1/mandates/"+big.MandateID+"/notifications/"+approved.NotificationID+"/approve", "ad-merchant", ""),
		http.StatusNotFound, problem.CodeMandateNotFound)
	mandateOf(t, s.post(alphaKey, "/v1/mandates/"+big.MandateID+"/notifications/"+approved.NotificationID+"/approve", "ad-1", ""), http.StatusOK)
	m = s.mandateUntil(alphaKey, big.MandateID, 30*time.Second, "its debits ended", func(m contract.Mandate) bool {
		return debitIn(m, approved.NotificationID).Status == "SUCCEEDED" && debitIn(m, unapproved.NotificationID).Status == "FAILED" &&
			debitIn(m, small.NotificationID).Status == "SUCCEEDED"
	})
	if f := debitIn(m, unapproved.NotificationID); f.FailureCode == nil || *f.FailureCode != "DEBIT_NOT_APPROVED" || f.PaymentID != nil {
		t.Fatalf("unapproved debit %+v", f)
	}

	// A debit failing for the payer's funds is retried; with the money there by then, the retry succeeds.
	poor := mandateOf(t, s.post(betaKey, "/v1/mandates", "m-poor", fmt.Sprintf(`{"payer_vpa":"poor@okbank","payee_vpa":"shop@okbank",`+
		`"amount_paise":1000,"amount_rule":"EXACT","frequency":"ASPRESENTED","valid_from":%q,"valid_until":%q,"purpose":"Milk"}`,
		today, nextYear)), http.StatusCreated)
	mandateOf(t, act(alphaKey, poor.MandateID, "approve", "a-poor"), http.StatusOK)
	expect(t, notify(poor.MandateID, "n-inexact", 999, time.Now().Add(time.Hour)), http.StatusUnprocessableEntity, problem.CodeDebitNotExact)
	retried := debitOf(t, notify(poor.MandateID, "n-poor-1", 1000, time.Now().Add(2500*time.Millisecond)), http.StatusCreated)
	s.mandateUntil(alphaKey, poor.MandateID, 30*time.Second, "retry scheduled", func(m contract.Mandate) bool {
		return debitIn(m, retried.NotificationID).Status == "RETRY_SCHEDULED"
	})
	s.deposit(alphaKey, "poor@okbank", 1000)
	m = s.mandateUntil(alphaKey, poor.MandateID, 30*time.Second, "retried", func(m contract.Mandate) bool {
		return debitIn(m, retried.NotificationID).Status == "SUCCEEDED"
	})
	// Attempt 2 when the deposit lands within the retry interval; 3 on a machine slow enough that the
	// second attempt ran before it. Either way a retry, within 1 + MANDATE_RETRIES attempts.
	if d := debitIn(m, retried.NotificationID); d.Attempt < 2 || d.Attempt > 3 {
		t.Fatalf("retried debit %+v, want success on a retry (attempt 2 or 3)", d)
	}
	// Its retries run out: 1 + MANDATE_RETRIES attempts, then FAILED with the payer's funds' code.
	broke := debitOf(t, notify(poor.MandateID, "n-poor-2", 1000, time.Now().Add(2500*time.Millisecond)), http.StatusCreated)
	m = s.mandateUntil(alphaKey, poor.MandateID, 40*time.Second, "failed", func(m contract.Mandate) bool {
		return debitIn(m, broke.NotificationID).Status == "FAILED"
	})
	if d := debitIn(m, broke.NotificationID); d.Attempt != 3 || d.FailureCode == nil || *d.FailureCode != "INSUFFICIENT_FUNDS" {
		t.Fatalf("exhausted debit %+v", d)
	}

	// A debit due inside a peak window runs at the window's end.
	if peakOK {
		pk := debitOf(t, notify(big.MandateID, "n-peak", 100, peakStart.Add(10*time.Second)), http.StatusCreated)
		if at, err := time.Parse(time.RFC3339Nano, pk.ExecuteAt); err != nil || !at.Equal(peakEnd) {
			t.Fatalf("peak debit executes at %s, want the window's end %s", pk.ExecuteAt, peakEnd)
		}
	}

	// Paused: a scheduled debit fails when due, notifications are refused; resumed, they pass again.
	held := debitOf(t, notify(big.MandateID, "n-held", 100, time.Now().Add(2500*time.Millisecond)), http.StatusCreated)
	expect(t, act(betaKey, big.MandateID, "pause", "p-merchant"), http.StatusNotFound, problem.CodeMandateNotFound)
	if pm := mandateOf(t, act(alphaKey, big.MandateID, "pause", "p-1"), http.StatusOK); pm.Status != "PAUSED" {
		t.Fatalf("paused %+v", pm)
	}
	expect(t, notify(big.MandateID, "n-paused", 100, time.Now().Add(time.Hour)), http.StatusUnprocessableEntity, problem.CodeMandatePaused)
	m = s.mandateUntil(alphaKey, big.MandateID, 30*time.Second, "held debit failed", func(m contract.Mandate) bool {
		return debitIn(m, held.NotificationID).Status == "FAILED"
	})
	if d := debitIn(m, held.NotificationID); d.FailureCode == nil || *d.FailureCode != "MANDATE_PAUSED" || d.PaymentID != nil {
		t.Fatalf("held debit %+v", d)
	}
	if rm := mandateOf(t, act(alphaKey, big.MandateID, "resume", "r-1"), http.StatusOK); rm.Status != "ACTIVE" {
		t.Fatalf("resumed %+v", rm)
	}
	// Revoked by the merchant: nothing more.
	if rv := mandateOf(t, act(betaKey, big.MandateID, "revoke", "v-1"), http.StatusOK); rv.Status != "REVOKED" {
		t.Fatalf("revoked %+v", rv)
	}
	expect(t, notify(big.MandateID, "n-revoked", 100, time.Now().Add(time.Hour)), http.StatusUnprocessableEntity, problem.CodeMandateRevoked)
	expect(t, act(alphaKey, big.MandateID, "resume", "r-2"), http.StatusUnprocessableEntity, problem.CodeMandateInvalidState)

	// One-time and irrevocable: not revoked; COMPLETED once its debit is done.
	once := mandateOf(t, s.post(betaKey, "/v1/mandates", "m-once-2", fmt.Sprintf(`{"payer_vpa":"cust@okbank","payee_vpa":"shop@okbank",`+
		`"amount_paise":3000,"amount_rule":"MAX","frequency":"ONETIME","revocable":false,"valid_from":%q,"valid_until":%q,"purpose":"Deposit"}`,
		today, nextYear)), http.StatusCreated)
	mandateOf(t, act(alphaKey, once.MandateID, "approve", "a-once"), http.StatusOK)
	expect(t, act(alphaKey, once.MandateID, "revoke", "v-once"), http.StatusUnprocessableEntity, problem.CodeMandateIrrevocable)
	debitOf(t, notify(once.MandateID, "n-once", 3000, time.Now().Add(2500*time.Millisecond)), http.StatusCreated)
	expect(t, notify(once.MandateID, "n-twice", 3000, time.Now().Add(time.Hour)), http.StatusUnprocessableEntity, problem.CodeDebitFrequency)
	s.mandateUntil(alphaKey, once.MandateID, 30*time.Second, "COMPLETED", func(m contract.Mandate) bool { return m.Status == "COMPLETED" })

	// Validity over: COMPLETED by itself.
	short := mandateOf(t, s.post(betaKey, "/v1/mandates", "m-short", fmt.Sprintf(`{"payer_vpa":"cust@okbank","payee_vpa":"shop@okbank",`+
		`"amount_paise":100,"amount_rule":"MAX","frequency":"DAILY","valid_from":%q,"valid_until":%q,"purpose":"Trial"}`,
		today, time.Now().Add(3*time.Second).UTC().Format(time.RFC3339Nano))), http.StatusCreated)
	mandateOf(t, act(alphaKey, short.MandateID, "approve", "a-short"), http.StatusOK)

	// Declined (ZA), and not approved in time (EXPIRED, U69).
	dec := mandateOf(t, request(betaKey, "m-dec", "cust@okbank", "shop@okbank", ""), http.StatusCreated)
	if dm := mandateOf(t, act(alphaKey, dec.MandateID, "decline", "d-1"), http.StatusOK); dm.Status != "DECLINED" || dm.NPCICode == nil || *dm.NPCICode != "ZA" {
		t.Fatalf("declined %+v", dm)
	}
	expect(t, act(alphaKey, dec.MandateID, "approve", "a-dec"), http.StatusUnprocessableEntity, problem.CodeMandateInvalidState)
	exp := mandateOf(t, request(betaKey, "m-exp", "cust@okbank", "shop@okbank", `,"expires_in_seconds":2`), http.StatusCreated)
	em := s.mandateUntil(alphaKey, exp.MandateID, 30*time.Second, "EXPIRED", func(m contract.Mandate) bool { return m.Status == "EXPIRED" })
	if em.NPCICode == nil || *em.NPCICode != "U69" {
		t.Fatalf("expired %+v", em)
	}
	expect(t, act(alphaKey, exp.MandateID, "approve", "a-exp"), http.StatusUnprocessableEntity, problem.CodeMandateExpired)
	s.mandateUntil(alphaKey, short.MandateID, 30*time.Second, "COMPLETED", func(m contract.Mandate) bool { return m.Status == "COMPLETED" })

	// The audit trail: the mandate's history, oldest first.
	res := s.do(req{method: http.MethodGet, path: "/v1/mandates/" + m1.MandateID + "/events", key: alphaKey})
	var trail contract.PaymentEventPage
	if res.status != http.StatusOK || json.Unmarshal(res.body, &trail) != nil {
		t.Fatalf("trail %d %s", res.status, res.body)
	}
	var types []string
	for _, e := range trail.Items {
		types = append(types, e.EventType)
	}
	want := []string{"MandateRequested", "MandateApproved", "MandateDebitNotified", "MandateDebitAttempted", "MandateDebitSucceeded"}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("trail %v, want %v", types, want)
	}
}

// peakWindowTimes is a one-minute peak window ten minutes ahead (IST); not ok when it would cross midnight.
func peakWindowTimes() (start, end time.Time, ok bool) {
	start = time.Now().In(ist).Add(10 * time.Minute).Truncate(time.Minute)
	end = start.Add(time.Minute)
	return start, end, end.Day() == start.Day() && end.Hour()*60+end.Minute() > start.Hour()*60+start.Minute()
}
