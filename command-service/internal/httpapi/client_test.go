package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/ids"
	"upi/shared/contract/problem"
	"upi/shared/platform/eventstore"
)

func TestOpenAccount(t *testing.T) {
	e := newEnv(t)
	r := e.must(http.StatusCreated, "psp-a", "k1", "/v1/accounts", `{"vpa":"Alice@OkBank","holder_name":" Alice "}`)
	var a contract.Account
	decode(t, r, &a)
	if r.header.Get("Location") != "/v1/accounts/alice@okbank" || r.header.Get(contract.HeaderIdempotentReplayed) != "" {
		t.Fatalf("headers %v", r.header)
	}
	if a.VPA != "alice@okbank" || a.HolderName != "Alice" || a.Status != "ACTIVE" || a.BalancePaise != 0 ||
		a.Currency != "INR" || a.CreatedAt == "" || a.CreatedAt != a.UpdatedAt {
		t.Fatalf("account %+v", a)
	}
	if _, err := eventstore.ParseToken(a.Position); err != nil {
		t.Fatalf("position %q: %v", a.Position, err)
	}

	// The event carries the ids of the request: the key's id and its fingerprint.
	opened, err := e.store.EventsByID(context.Background(), ids.ClientCommand("psp-a", "POST", "/v1/accounts", "k1"))
	if err != nil || len(opened) != 1 || opened[0].AggregateID != "alice@okbank" || opened[0].Type != events.AccountOpened {
		t.Fatalf("stored %+v, %v", opened, err)
	}
	var meta events.Metadata
	if err := json.Unmarshal(opened[0].Metadata, &meta); err != nil || len(meta.Fingerprint) != 64 || meta.ClientID != "psp-a" {
		t.Fatalf("metadata %s", opened[0].Metadata)
	}

	// The same request again: the same answer, byte for byte, and nothing appended.
	again := e.must(http.StatusCreated, "psp-a", "k1", "/v1/accounts", `{"holder_name":"Alice", "vpa":"alice@okbank"}`)
	if !bytes.Equal(again.body, r.body) || again.header.Get(contract.HeaderIdempotentReplayed) != "true" ||
		again.header.Get("Location") != r.header.Get("Location") {
		t.Fatalf("replay %s %v\nfirst  %s", again.body, again.header, r.body)
	}

	e.refused(e.do("psp-a", "k1", "/v1/accounts", `{"vpa":"alice@okbank","holder_name":"Alicia"}`),
		http.StatusUnprocessableEntity, problem.CodeIdempotencyKeyReused)
	e.refused(e.do("psp-a", "k1", "/v1/accounts", `{"vpa":"carol@okbank","holder_name":"Alice"}`),
		http.StatusUnprocessableEntity, problem.CodeIdempotencyKeyReused)
	e.refused(e.do("psp-b", "k1", "/v1/accounts", `{"vpa":"alice@okbank","holder_name":"Alice"}`),
		http.StatusConflict, problem.CodeAccountExists)
	e.refused(e.do("psp-a", "k2", "/v1/accounts", `{"vpa":"ALICE@okbank","holder_name":"Alice"}`),
		http.StatusConflict, problem.CodeAccountExists)
	e.refused(e.do("", "k3", "/v1/accounts", `{"vpa":"dave@okbank","holder_name":"Dave"}`),
		http.StatusUnauthorized, problem.CodeUnauthenticated)
	e.refused(e.do("psp-a", "", "/v1/accounts", `{"vpa":"dave@okbank","holder_name":"Dave"}`),
		http.StatusBadRequest, problem.CodeIdempotencyKeyRequired)
	e.refused(e.do("psp-a", strings.Repeat("k", 256), "/v1/accounts", `{"vpa":"dave@okbank","holder_name":"Dave"}`),
		http.StatusBadRequest, problem.CodeIdempotencyKeyRequired)
	if n := e.eventCount(); n != 1 {
		t.Fatalf("%d events, want 1", n)
	}

	metrics := e.metrics()
	for _, line := range []string{`commands_total{command="open_account",outcome="ok"} 1`,
		`commands_total{command="open_account",outcome="replayed"} 1`,
		`commands_total{command="open_account",outcome="rejected"} 6`} {
		if !strings.Contains(metrics, line+"\n") {
			t.Errorf("metrics lack %s", line)
		}
	}

	// Another client may use the same key for its own account: keys are scoped per client.
	e.must(http.StatusCreated, "psp-b", "k1", "/v1/accounts", `{"vpa":"bob@okbank","holder_name":"Bob"}`)
}

func TestDeposit(t *testing.T) {
	e := newEnv(t)
	e.openAccount("psp-a", "alice@okbank")
	e.openAccount("psp-b", "bob@okbank")

	r := e.must(http.StatusCreated, "psp-a", "d1", "/v1/accounts/alice@okbank/deposits", `{"amount_paise":50000,"reference":"neft-1"}`)
	var d contract.Deposit
	decode(t, r, &d)
	if d.VPA != "alice@okbank" || d.AmountPaise != 50000 || d.Reference != "neft-1" || d.Position == "" || d.CreatedAt == "" {
		t.Fatalf("deposit %+v", d)
	}
	// A retry, spelling the account in another case, is the same deposit.
	again := e.must(http.StatusCreated, "psp-a", "d1", "/v1/accounts/ALICE@okbank/deposits", `{"reference":"neft-1","amount_paise":50000}`)
	if !bytes.Equal(again.body, r.body) || again.header.Get(contract.HeaderIdempotentReplayed) != "true" {
		t.Fatalf("replay %s, first %s", again.body, r.body)
	}
	encoded := e.must(http.StatusCreated, "psp-a", "d1", "/v1/accounts/alice%40okbank/deposits", `{"reference":"neft-1","amount_paise":50000}`)
	if !bytes.Equal(encoded.body, r.body) {
		t.Fatalf("replay with an encoded path %s, first %s", encoded.body, r.body)
	}
	// The reference is taken once per account: the same reference and amount under another key is the
	// same deposit; another amount is a conflict, whatever the key.
	other := e.must(http.StatusCreated, "psp-a", "d-other", "/v1/accounts/alice@okbank/deposits", `{"amount_paise":50000,"reference":"neft-1"}`)
	if !bytes.Equal(other.body, r.body) || other.header.Get(contract.HeaderIdempotentReplayed) != "true" {
		t.Fatalf("the same reference under another key: %s, first %s", other.body, r.body)
	}
	e.refused(e.do("psp-a", "d1", "/v1/accounts/alice@okbank/deposits", `{"amount_paise":50001,"reference":"neft-1"}`),
		http.StatusConflict, problem.CodeDepositReferenceConflict)
	e.refused(e.do("psp-a", "d4", "/v1/accounts/alice@okbank/deposits", `{"amount_paise":50001,"reference":"neft-1"}`),
		http.StatusConflict, problem.CodeDepositReferenceConflict)
	e.refused(e.do("psp-b", "d2", "/v1/accounts/alice@okbank/deposits", `{"amount_paise":100,"reference":"x"}`),
		http.StatusNotFound, problem.CodeAccountNotFound)
	e.refused(e.do("psp-a", "d3", "/v1/accounts/nobody@okbank/deposits", `{"amount_paise":100,"reference":"x"}`),
		http.StatusNotFound, problem.CodeAccountNotFound)
	e.refused(e.do("psp-a", "", "/v1/accounts/alice@okbank/deposits", `{"amount_paise":100,"reference":"x"}`),
		http.StatusBadRequest, problem.CodeIdempotencyKeyRequired)

	e.deposit("psp-a", "alice@okbank", 250, "d4")
	if a := e.account("alice@okbank"); a.Balance != 50250 {
		t.Fatalf("balance %d, want 50250", a.Balance)
	}
	if n := e.eventCount(); n != 6 {
		t.Fatalf("%d events, want 6: two openings, and two deposits of two sides each", n)
	}
}

// A withdrawal is decided at once: 202 with the withdrawal COMPLETED and its RRN, or FAILED with
// INSUFFICIENT_FUNDS and Z9 when the balance does not cover it; its Location is where it is read.
func TestWithdraw(t *testing.T) {
	e := newEnv(t)
	e.openAccount("psp-a", "alice@okbank")
	e.deposit("psp-a", "alice@okbank", 1000, "d1")
	r := e.must(http.StatusAccepted, "psp-a", "w1", "/v1/accounts/alice@okbank/withdrawals", `{"amount_paise":400,"reference":"payout-1"}`)
	var w contract.Withdrawal
	decode(t, r, &w)
	if w.Status != contract.PaymentCompleted || w.AmountPaise != 400 || w.Reference != "payout-1" || len(w.RRN) != 12 ||
		w.FailureCode != nil || r.header.Get("Location") != contract.PathWithdrawals+"/"+w.WithdrawalID {
		t.Fatalf("withdrawal %+v, Location %q", w, r.header.Get("Location"))
	}
	r = e.must(http.StatusAccepted, "psp-a", "w2", "/v1/accounts/alice@okbank/withdrawals", `{"amount_paise":601,"reference":"payout-2"}`)
	w = contract.Withdrawal{}
	decode(t, r, &w)
	if w.Status != contract.PaymentFailed || w.FailureCode == nil || *w.FailureCode != "INSUFFICIENT_FUNDS" ||
		w.NPCICode == nil || *w.NPCICode != "Z9" || w.RRN != "" {
		t.Fatalf("withdrawal past the balance %+v", w)
	}
	e.refused(e.do("psp-b", "w3", "/v1/accounts/alice@okbank/withdrawals", `{"amount_paise":1,"reference":"x"}`),
		http.StatusNotFound, problem.CodeAccountNotFound)
	e.refused(e.do("psp-a", "w4", "/v1/accounts/alice@okbank/withdrawals", `{"amount_paise":0,"reference":"x"}`),
		http.StatusBadRequest, problem.CodeValidation)
	if a := e.account("alice@okbank"); a.Balance != 600 {
		t.Fatalf("balance %d, want 600", a.Balance)
	}
}

func TestInitiatePayment(t *testing.T) {
	e := newEnv(t)
	e.openAccount("psp-a", "alice@okbank")
	e.openAccount("psp-b", "bob@okbank")

	body := `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":12500,"note":"lunch"}`
	r := e.must(http.StatusAccepted, "psp-a", "p1", "/v1/payments", body)
	var p contract.Payment
	decode(t, r, &p)
	wantID := ids.ClientCommand("psp-a", "POST", "/v1/payments", "p1").String()
	if p.PaymentID != wantID || p.PayerVPA != "alice@okbank" || p.PayeeVPA != "bob@okbank" || p.AmountPaise != 12500 ||
		p.Note != "lunch" || p.Status != "PENDING" || p.FailureCode != nil || p.Currency != "INR" || p.Position == "" {
		t.Fatalf("payment %+v", p)
	}
	if r.header.Get("Location") != "/v1/payments/"+wantID || !strings.Contains(string(r.body), `"failure_code":null`) {
		t.Fatalf("answer %v %s", r.header, r.body)
	}
	stream := e.stream(wantID)
	if len(stream) != 1 || stream[0].Type != events.PaymentInitiated {
		t.Fatalf("payment stream %+v", stream)
	}
	var meta events.Metadata
	if err := json.Unmarshal(stream[0].Metadata, &meta); err != nil || meta.CorrelationID != wantID || meta.Fingerprint == "" {
		t.Fatalf("metadata %s", stream[0].Metadata)
	}

	again := e.must(http.StatusAccepted, "psp-a", "p1", "/v1/payments", body)
	if !bytes.Equal(again.body, r.body) || again.header.Get(contract.HeaderIdempotentReplayed) != "true" {
		t.Fatalf("replay %s, first %s", again.body, r.body)
	}
	e.refused(e.do("psp-a", "p1", "/v1/payments", strings.Replace(body, "12500", "12501", 1)),
		http.StatusUnprocessableEntity, problem.CodeIdempotencyKeyReused)
	e.refused(e.do("psp-b", "p2", "/v1/payments", body), http.StatusNotFound, problem.CodeAccountNotFound)
	e.refused(e.do("psp-a", "p3", "/v1/payments", strings.Replace(body, "alice@", "nobody@", 1)),
		http.StatusNotFound, problem.CodeAccountNotFound)
	e.refused(e.do("psp-a", "p4", "/v1/payments", strings.Replace(body, "bob@", "nobody@", 1)),
		http.StatusUnprocessableEntity, problem.CodePayeeNotFound)
	e.refused(e.do("psp-a", "", "/v1/payments", body), http.StatusBadRequest, problem.CodeIdempotencyKeyRequired)
	e.refused(e.do("", "p5", "/v1/payments", body), http.StatusUnauthorized, problem.CodeUnauthenticated)
	if n := e.eventCount(); n != 3 {
		t.Fatalf("%d events, want 3", n)
	}
	// Anyone may pay into an account it does not own.
	e.pay("psp-b", "bob@okbank", "alice@okbank", 1, "p6")
}

// TestBadInputAppendsNothing: every invalid request gets a 4xx problem+json and leaves the log as it was.
func TestBadInputAppendsNothing(t *testing.T) {
	e := newEnv(t)
	e.openAccount("psp-a", "alice@okbank")
	e.openAccount("psp-b", "bob@okbank")
	const dep = "/v1/accounts/alice@okbank/deposits"
	pay := func(amount string) string {
		return `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":` + amount + `}`
	}
	for _, tc := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"bad vpa", "/v1/accounts", `{"vpa":"not a vpa","holder_name":"X"}`, 400, problem.CodeValidation},
		{"vpa without handle", "/v1/accounts", `{"vpa":"x@","holder_name":"X"}`, 400, problem.CodeValidation},
		{"vpa too long", "/v1/accounts", `{"vpa":"` + strings.Repeat("a", 250) + `@okbank","holder_name":"X"}`, 400, problem.CodeValidation},
		{"empty holder_name", "/v1/accounts", `{"vpa":"x@okbank","holder_name":"  "}`, 400, problem.CodeValidation},
		{"holder_name of 101", "/v1/accounts", `{"vpa":"x@okbank","holder_name":"` + strings.Repeat("h", 101) + `"}`, 400, problem.CodeValidation},
		{"unknown field", "/v1/accounts", `{"vpa":"x@okbank","holder_name":"X","admin":true}`, 400, problem.CodeValidation},
		{"malformed json", "/v1/accounts", `{"vpa":"x@okbank",`, 400, problem.CodeMalformedJSON},
		{"body over 64KiB", "/v1/accounts", `{"vpa":"x@okbank","holder_name":"` + strings.Repeat("h", 70_000) + `"}`, 413, problem.CodeBodyTooLarge},
		{"deposit of 0", dep, `{"amount_paise":0,"reference":"r"}`, 400, problem.CodeValidation},
		{"negative deposit", dep, `{"amount_paise":-5,"reference":"r"}`, 400, problem.CodeValidation},
		{"float deposit", dep, `{"amount_paise":10.5,"reference":"r"}`, 400, problem.CodeValidation},
		{"string deposit", dep, `{"amount_paise":"100","reference":"r"}`, 400, problem.CodeValidation},
		{"deposit over max", dep, `{"amount_paise":100000001,"reference":"r"}`, 400, problem.CodeValidation},
		{"empty reference", dep, `{"amount_paise":1,"reference":""}`, 400, problem.CodeValidation},
		{"reference of 65", dep, `{"amount_paise":1,"reference":"` + strings.Repeat("r", 65) + `"}`, 400, problem.CodeValidation},
		{"deposit into a bad vpa", "/v1/accounts/NOT!VALID/deposits", `{"amount_paise":1,"reference":"r"}`, 400, problem.CodeValidation},
		{"payment of 0", "/v1/payments", pay("0"), 400, problem.CodeValidation},
		{"negative payment", "/v1/payments", pay("-1"), 400, problem.CodeValidation},
		{"float payment", "/v1/payments", pay("1.0"), 400, problem.CodeValidation},
		{"string payment", "/v1/payments", pay(`"100"`), 400, problem.CodeValidation},
		{"payment over max", "/v1/payments", pay("10000001"), 400, problem.CodeValidation},
		{"payer is payee", "/v1/payments", `{"payer_vpa":"alice@okbank","payee_vpa":"ALICE@okbank","amount_paise":1}`, 400, problem.CodeValidation},
		{"note of 101", "/v1/payments", `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":1,"note":"` + strings.Repeat("n", 101) + `"}`, 400, problem.CodeValidation},
		{"payment unknown field", "/v1/payments", `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":1,"currency":"USD"}`, 400, problem.CodeValidation},
		{"payment array", "/v1/payments", `[1,2]`, 400, problem.CodeMalformedJSON},
		{"two objects", "/v1/payments", pay("1") + pay("1"), 400, problem.CodeMalformedJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.eventCount()
			e.refused(e.do("psp-a", "key-"+tc.name, tc.path, tc.body), tc.status, tc.code)
			if after := e.eventCount(); after != before {
				t.Fatalf("events %d -> %d", before, after)
			}
		})
	}
}

// TestConcurrentRepeats: many copies of one request at once make one event, and every copy gets the same
// answer.
func TestConcurrentRepeats(t *testing.T) {
	e := newEnv(t)
	e.openAccount("psp-b", "bob@okbank")
	for _, tc := range []struct {
		name, path, body string
		status           int
		events           int // a deposit and a withdrawal have two sides: the account's and the bank's
	}{
		{"open", "/v1/accounts", `{"vpa":"alice@okbank","holder_name":"Alice"}`, http.StatusCreated, 1},
		{"deposit", "/v1/accounts/alice@okbank/deposits", `{"amount_paise":700,"reference":"r"}`, http.StatusCreated, 2},
		{"withdraw", "/v1/accounts/alice@okbank/withdrawals", `{"amount_paise":70,"reference":"w"}`, http.StatusAccepted, 2},
		{"pay", "/v1/payments", `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":7}`, http.StatusAccepted, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.eventCount()
			const n = 20
			answers := make([]response, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					answers[i] = e.do("psp-a", "same-key", tc.path, tc.body)
				}()
			}
			wg.Wait()
			fresh := 0
			for i, a := range answers {
				if a.status != tc.status || !bytes.Equal(a.body, answers[0].body) {
					t.Fatalf("answer %d: %d %s, answer 0: %d %s", i, a.status, a.body, answers[0].status, answers[0].body)
				}
				if a.header.Get(contract.HeaderIdempotentReplayed) == "" {
					fresh++
				}
			}
			if fresh != 1 {
				t.Fatalf("%d answers not marked replayed, want 1", fresh)
			}
			if after := e.eventCount(); after != before+tc.events {
				t.Fatalf("events %d -> %d, want %d more", before, after, tc.events)
			}
		})
	}
}

// TestConcurrentDeposits: deposits racing into one account all succeed and add up exactly.
func TestConcurrentDeposits(t *testing.T) {
	e := newEnv(t)
	e.openAccount("psp-a", "alice@okbank")
	const n = 100
	var wg sync.WaitGroup
	statuses := make([]response, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.do("psp-a", fmt.Sprintf("dep-%d", i), "/v1/accounts/alice@okbank/deposits",
				fmt.Sprintf(`{"amount_paise":%d,"reference":"r%d"}`, i+1, i))
		}()
	}
	wg.Wait()
	for i, r := range statuses {
		if r.status != http.StatusCreated {
			t.Fatalf("deposit %d: %d %s", i, r.status, r.body)
		}
	}
	if a := e.account("alice@okbank"); a.Balance != n*(n+1)/2 {
		t.Fatalf("balance %d, want %d", a.Balance, n*(n+1)/2)
	}
	if stream := e.stream("alice@okbank"); len(stream) != n+1 {
		t.Fatalf("stream of %d events", len(stream))
	}
}

// TestDatabaseDown: with the database gone, a command answers 503 DEPENDENCY_UNAVAILABLE (safe to retry).
func TestDatabaseDown(t *testing.T) {
	e := newEnv(t)
	e.pool.Close()
	r := e.do("psp-a", "k", "/v1/accounts", `{"vpa":"alice@okbank","holder_name":"Alice"}`)
	e.refused(r, http.StatusServiceUnavailable, problem.CodeDependencyUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
}
