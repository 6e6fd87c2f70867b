package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/ids"
	"upi/shared/contract/money"
	"upi/shared/contract/problem"
)

const workflow = "event-consumers"

// stepsBody is a request of one step: the payment, the step, and the fields of body ("" or a JSON object).
func stepsBody(payment, step, body string) string {
	fields := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(body), "{"), "}"))
	if fields != "" {
		fields = "," + fields
	}
	return fmt.Sprintf(`{"steps":[{"payment_id":%q,"step":%q%s}]}`, payment, step, fields)
}

// stepResult sends one step and returns its result.
func (e *env) stepResult(payment, step, body string) contract.StepResult {
	e.t.Helper()
	// Called from goroutines too: failures are reported with Errorf (t.Fatal must run on the test's own
	// goroutine) and answered with a zero result, which the caller's checks then refuse.
	var resp contract.StepsResponse
	r := e.do(workflow, "", contract.PathSteps, stepsBody(payment, step, body))
	if r.status != http.StatusOK {
		e.t.Errorf("POST %s %s = %d %s, want 200", contract.PathSteps, stepsBody(payment, step, body), r.status, r.body)
		return contract.StepResult{}
	}
	if err := json.Unmarshal(r.body, &resp); err != nil {
		e.t.Errorf("steps answer %s: %v", r.body, err)
		return contract.StepResult{}
	}
	if len(resp.Results) != 1 || resp.Results[0].PaymentID.String() != payment || string(resp.Results[0].Step) != step {
		e.t.Errorf("steps answer %+v", resp)
		return contract.StepResult{}
	}
	return resp.Results[0]
}

func (e *env) step(payment, step, body string) contract.StepResult {
	e.t.Helper()
	a := e.stepResult(payment, step, body)
	if a.Problem != nil || a.Position == "" || a.EventID == "" {
		// Errorf: step is called from goroutines too, where t.Fatal must not run.
		e.t.Errorf("step %s of %s: %+v (problem %+v)", step, payment, a, a.Problem)
	}
	return a
}

// stepRefused sends one step and checks that it alone was refused with status and code.
func (e *env) stepRefused(payment, step, body string, status int, code string) {
	e.t.Helper()
	a := e.stepResult(payment, step, body)
	if a.Problem == nil || a.Problem.Status != status || a.Problem.Code != code || a.EventID != "" {
		e.t.Fatalf("step %s of %s: %+v (problem %+v), want refused %d %s", step, payment, a, a.Problem, status, code)
	}
}

// typesOf counts, by type, the events of a payment anywhere in the log.
func (e *env) typesOf(payment string) map[string]int {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(),
		`select event_type from events where payload->>'payment_id' = $1`, payment)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var typ string
		if err := rows.Scan(&typ); err != nil {
			e.t.Fatal(err)
		}
		out[typ]++
	}
	return out
}

func (e *env) parties(t *testing.T, payerBalance int64) {
	t.Helper()
	e.openAccount("psp-a", "alice@okbank")
	e.openAccount("psp-b", "bob@okbank")
	if payerBalance > 0 {
		e.deposit("psp-a", "alice@okbank", payerBalance, "seed")
	}
}

func TestPaymentCompletes(t *testing.T) {
	e := newEnv(t)
	e.parties(t, 1000)
	p := e.pay("psp-a", "alice@okbank", "bob@okbank", 600, "p").PaymentID
	pid := uuid.MustParse(p)

	debit := e.step(p, "debit", `{}`)
	if debit.EventType != events.AccountDebited || debit.Replayed || debit.EventID != ids.StepEvent(pid, ids.StepDebit).String() {
		t.Fatalf("debit %+v", debit)
	}
	// A repeated step (the workflow is at least once) finds its outcome and moves no money.
	again := e.step(p, "debit", ``)
	if !again.Replayed || again.EventID != debit.EventID || again.Position != debit.Position {
		t.Fatalf("debit again %+v, first %+v", again, debit)
	}
	if b := e.account("alice@okbank").Balance; b != 400 {
		t.Fatalf("payer balance %d after debiting twice, want 400", b)
	}

	named := uuid.NewString() // a cause the caller names wins over the default
	credit := e.step(p, "credit", `{"causation_id":"`+named+`"}`)
	if credit.EventType != events.AccountCredited || credit.EventID != ids.StepEvent(pid, ids.StepSettle).String() {
		t.Fatalf("credit %+v", credit)
	}
	// reverse after credit answers the credit, which stands.
	if r := e.step(p, "reverse", `{"code":"PAYEE_UNAVAILABLE"}`); !r.Replayed || r.EventType != events.AccountCredited {
		t.Fatalf("reverse after credit %+v", r)
	}
	done := e.step(p, "complete", `{}`)
	if done.EventType != events.PaymentCompleted || done.Replayed {
		t.Fatalf("complete %+v", done)
	}
	// A completed payment stays completed: fail answers the completion.
	if f := e.step(p, "fail", `{"code":"PROCESSING_ERROR"}`); !f.Replayed || f.EventType != events.PaymentCompleted {
		t.Fatalf("fail after complete %+v", f)
	}

	if a, b := e.account("alice@okbank").Balance, e.account("bob@okbank").Balance; a != 400 || b != 600 {
		t.Fatalf("balances %d / %d, want 400 / 600", a, b)
	}
	want := map[string]int{events.PaymentInitiated: 1, events.AccountDebited: 1, events.AccountCredited: 1, events.PaymentCompleted: 1}
	if got := e.typesOf(p); !equalCounts(got, want) {
		t.Fatalf("events of the payment %v, want %v", got, want)
	}

	// Metadata ties each step to its payment and to its cause: the one named, or else the event that met
	// the step's precondition.
	for id, cause := range map[string]string{debit.EventID: p, credit.EventID: named, done.EventID: credit.EventID} {
		stored, err := e.store.EventsByID(context.Background(), uuid.MustParse(id))
		if err != nil || len(stored) != 1 {
			t.Fatal(err)
		}
		if m := string(stored[0].Metadata); !contains(m, `"correlation_id": "`+p+`"`) || !contains(m, `"causation_id": "`+cause+`"`) ||
			!contains(m, `"client_id": "`+workflow+`"`) {
			t.Fatalf("%s metadata %s, want caused by %s", stored[0].Type, m, cause)
		}
	}
}

func TestPaymentFailsOnInsufficientFunds(t *testing.T) {
	e := newEnv(t)
	e.parties(t, 100)
	p := e.pay("psp-a", "alice@okbank", "bob@okbank", 101, "p").PaymentID

	if d := e.step(p, "debit", `{}`); d.EventType != events.DebitRejected {
		t.Fatalf("debit %+v", d)
	}
	e.stepRefused(p, "credit", `{}`, http.StatusConflict, problem.CodeStepPrecondition)
	e.stepRefused(p, "reverse", `{"code":"PAYEE_UNAVAILABLE"}`, http.StatusConflict, problem.CodeStepPrecondition)
	e.stepRefused(p, "complete", `{}`, http.StatusConflict, problem.CodeStepPrecondition)
	if f := e.step(p, "fail", `{"code":"INSUFFICIENT_FUNDS","reason":"the payer's debit was rejected"}`); f.EventType != events.PaymentFailed || f.Replayed {
		t.Fatalf("fail %+v", f)
	}
	// complete after fail: the failure stands.
	if c := e.step(p, "complete", `{}`); !c.Replayed || c.EventType != events.PaymentFailed {
		t.Fatalf("complete after fail %+v", c)
	}
	if a := e.account("alice@okbank").Balance; a != 100 {
		t.Fatalf("payer balance %d, want 100", a)
	}
}

func TestPaymentReversed(t *testing.T) {
	e := newEnv(t)
	e.parties(t, 1000)
	p := e.pay("psp-a", "alice@okbank", "bob@okbank", 300, "p").PaymentID
	e.step(p, "debit", `{}`)
	e.stepRefused(p, "fail", `{"code":"PAYEE_UNAVAILABLE"}`, http.StatusConflict, problem.CodeStepPrecondition)
	if r := e.step(p, "reverse", `{"code":"PAYEE_UNAVAILABLE"}`); r.EventType != events.DebitReversed || r.Replayed {
		t.Fatalf("reverse %+v", r)
	}
	if c := e.step(p, "credit", `{}`); !c.Replayed || c.EventType != events.DebitReversed {
		t.Fatalf("credit after reverse %+v", c)
	}
	e.stepRefused(p, "complete", `{}`, http.StatusConflict, problem.CodeStepPrecondition)
	e.step(p, "fail", `{"code":"PAYEE_UNAVAILABLE"}`)
	if a, b := e.account("alice@okbank").Balance, e.account("bob@okbank").Balance; a != 1000 || b != 0 {
		t.Fatalf("balances %d / %d, want 1000 / 0", a, b)
	}
}

func TestRejectDebitBurnsTheDebit(t *testing.T) {
	e := newEnv(t)
	e.parties(t, 1000)
	p := e.pay("psp-a", "alice@okbank", "bob@okbank", 300, "p").PaymentID
	if r := e.step(p, "reject-debit", `{"code":"PROCESSING_ERROR","reason":"the debit step kept failing"}`); r.EventType != events.DebitRejected {
		t.Fatalf("reject-debit %+v", r)
	}
	if d := e.step(p, "debit", `{}`); !d.Replayed || d.EventType != events.DebitRejected {
		t.Fatalf("debit after reject %+v", d)
	}
	if a := e.account("alice@okbank").Balance; a != 1000 {
		t.Fatalf("payer balance %d, want 1000", a)
	}
}

func TestStepRefusals(t *testing.T) {
	e := newEnv(t)
	e.parties(t, 1000)
	p := e.pay("psp-a", "alice@okbank", "bob@okbank", 300, "p").PaymentID
	before := e.eventCount()
	for _, step := range []string{"credit", "complete"} {
		e.stepRefused(p, step, `{}`, http.StatusConflict, problem.CodeStepPrecondition)
	}
	e.stepRefused(p, "reverse", `{"code":"PAYEE_UNAVAILABLE"}`, http.StatusConflict, problem.CodeStepPrecondition)
	e.stepRefused(p, "fail", `{"code":"PROCESSING_ERROR"}`, http.StatusConflict, problem.CodeStepPrecondition)
	e.stepRefused(uuid.NewString(), "debit", `{}`, http.StatusNotFound, problem.CodePaymentNotFound)
	e.stepRefused(p, "fail", `{}`, http.StatusBadRequest, problem.CodeValidation)
	e.stepRefused(p, "reverse", `{"code":"MADE_UP"}`, http.StatusBadRequest, problem.CodeValidation)
	e.stepRefused(p, "debit", `{"code":"PROCESSING_ERROR"}`, http.StatusBadRequest, problem.CodeValidation)
	e.stepRefused(p, "debit", `{"causation_id":"nope"}`, http.StatusBadRequest, problem.CodeValidation)
	e.stepRefused(p, "settle", `{}`, http.StatusBadRequest, problem.CodeValidation)
	e.stepRefused(p, "credit", `{"account":"mallory@okbank"}`, http.StatusBadRequest, problem.CodeValidation)
	// Requests that are wrong as a whole are refused whole.
	e.refused(e.do(workflow, "", contract.PathSteps, stepsBody("not-a-uuid", "debit", `{}`)), http.StatusBadRequest, problem.CodeMalformedJSON)
	e.refused(e.do(workflow, "", contract.PathSteps, stepsBody(p, "debit", `{"amount_paise":1}`)), http.StatusBadRequest, problem.CodeValidation)
	e.refused(e.do(workflow, "", contract.PathSteps, `{"steps":[]}`), http.StatusBadRequest, problem.CodeValidation)
	e.refused(e.do("", "", contract.PathSteps, stepsBody(p, "debit", `{}`)), http.StatusUnauthorized, problem.CodeUnauthenticated)
	if after := e.eventCount(); after != before {
		t.Fatalf("events %d -> %d", before, after)
	}
}

// TestCreditRacesReverse: credit and reverse of one payment at once; exactly one stands, and both calls
// answer it.
func TestCreditRacesReverse(t *testing.T) {
	e := newEnv(t)
	e.parties(t, 100_000)
	const n = 12
	payments := make([]string, n)
	for i := range n {
		payments[i] = e.pay("psp-a", "alice@okbank", "bob@okbank", 100, "p"+itoa(int64(i))).PaymentID
		e.step(payments[i], "debit", `{}`)
	}
	credits, reversals := make([]contract.StepResult, n), make([]contract.StepResult, n)
	var wg sync.WaitGroup
	for i, p := range payments {
		wg.Add(2)
		go func() { defer wg.Done(); credits[i] = e.step(p, "credit", `{}`) }()
		go func() { defer wg.Done(); reversals[i] = e.step(p, "reverse", `{"code":"PAYEE_UNAVAILABLE"}`) }()
	}
	wg.Wait()
	var credited money.Paise
	for i, p := range payments {
		c, r := credits[i], reversals[i]
		if c.EventID != r.EventID || c.EventType != r.EventType || c.Position != r.Position || c.Replayed == r.Replayed {
			t.Fatalf("payment %s: credit %+v, reverse %+v", p, c, r)
		}
		got := e.typesOf(p)
		if got[events.AccountCredited]+got[events.DebitReversed] != 1 {
			t.Fatalf("payment %s settled as %v", p, got)
		}
		if c.EventType == events.AccountCredited {
			credited++
		}
	}
	if a, b := e.account("alice@okbank").Balance, e.account("bob@okbank").Balance; a != 100_000-100*credited || b != 100*credited {
		t.Fatalf("balances %d / %d with %d credits", a, b, credited)
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// A request as large as a log batch can make is taken whole, each step answered on its own.
func TestStepsBatchAtItsLimit(t *testing.T) {
	e := newEnv(t)
	steps := make([]string, contract.MaxSteps)
	for i := range steps {
		steps[i] = fmt.Sprintf(`{"payment_id":%q,"step":"fail","code":"PROCESSING_ERROR","causation_id":%q,"reason":%q}`,
			uuid.NewString(), uuid.NewString(), strings.Repeat("r", 100))
	}
	var resp contract.StepsResponse
	decode(t, e.must(http.StatusOK, workflow, "", contract.PathSteps, `{"steps":[`+strings.Join(steps, ",")+`]}`), &resp)
	if len(resp.Results) != contract.MaxSteps {
		t.Fatalf("%d results for %d steps", len(resp.Results), contract.MaxSteps)
	}
	for _, r := range resp.Results {
		if r.Problem == nil || r.Problem.Code != problem.CodePaymentNotFound {
			t.Fatalf("a step of an unknown payment: %+v", r)
		}
	}
	e.refused(e.do(workflow, "", contract.PathSteps, `{"steps":[`+strings.Join(append(steps, steps[0]), ",")+`]}`),
		http.StatusBadRequest, problem.CodeValidation)
}
