package workflow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"upi/event-consumers/internal/adapters/commandclient"
	"upi/event-consumers/internal/adapters/postgres"
	"upi/event-consumers/internal/app/workflow"
	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/problem"
	"upi/shared/platform/eventstore"
	"upi/shared/platform/servicetoken"
	"upi/testenv"
)

// These tests run the workflow against the real command service (its binary) and PostgreSQL. Failures
// the command service would not produce on its own are injected at the workflow's HTTP edge.

type harness struct {
	t     *testing.T
	ctx   context.Context
	pool  *pgxpool.Pool
	store *eventstore.Store
	url   string
	steps *flaky
	flow  *workflow.Workflow
	pos   eventstore.Position
}

// flaky passes steps to the real command service, except the step it is told to fail, which it answers
// with a 500 of its own, as if that step alone had failed there.
type flaky struct {
	real workflow.Steps
	step atomic.Value // contract.StepName: the step that fails while set
	// calls and sent count the calls made and the steps they carried.
	calls, sent atomic.Int64
}

func (f *flaky) RunSteps(ctx context.Context, steps []contract.Step) ([]contract.StepResult, error) {
	f.calls.Add(1)
	f.sent.Add(int64(len(steps)))
	failing, _ := f.step.Load().(contract.StepName)
	out := make([]contract.StepResult, len(steps))
	var pass []contract.Step
	var index []int
	for i, st := range steps {
		if st.Step == failing {
			out[i] = contract.StepResult{PaymentID: st.PaymentID, Step: st.Step,
				Problem: problem.New(http.StatusInternalServerError, problem.CodeInternal, "injected failure")}
			continue
		}
		pass = append(pass, st)
		index = append(index, i)
	}
	if len(pass) == 0 {
		return out, nil
	}
	res, err := f.real.RunSteps(ctx, pass)
	if err != nil {
		return nil, err
	}
	for j, r := range res {
		out[index[j]] = r
	}
	return out, nil
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	pool, url := testenv.PostgresPool(t)
	cmd := testenv.StartService(t, "command-service", map[string]string{"DATABASE_URL": url, "LOG_LEVEL": "warn",
		// Payer limits off: the tests pay many times from one account.
		"LIMIT_DAILY_PAISE": "0", "LIMIT_DAILY_P2P_COUNT": "0", "LIMIT_NEW_ACCOUNT_PAISE": "0"})
	// The command service runs in development mode: it trusts the development keys of its callers.
	consumers := servicetoken.NewSigner(servicetoken.EventConsumers, servicetoken.DevRoot(servicetoken.EventConsumers))
	steps := &flaky{real: &commandclient.Client{BaseURL: cmd.URL, Timeout: 5 * time.Second,
		HTTP: &http.Client{Transport: consumers.Transport(servicetoken.CommandService, nil)}}}
	steps.step.Store(contract.StepName(""))
	cfg := workflow.Config{LastingAttempts: 3, TransientAttempts: 3, Backoff: time.Millisecond, RetryParkedEvery: time.Hour}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return &harness{t: t, ctx: ctx, pool: pool, store: eventstore.New(pool), url: cmd.URL, steps: steps,
		flow: workflow.New(steps, postgres.NewParkedSteps(pool, log), log, prometheus.NewRegistry(), cfg)}
}

// asGateway calls the command service's client routes as the gateway does.
var asGateway = &http.Client{Transport: servicetoken.NewSigner(servicetoken.Gateway,
	servicetoken.DevRoot(servicetoken.Gateway)).Transport(servicetoken.CommandService, nil)}

func (h *harness) post(path, key string, body any) []byte {
	h.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(h.ctx, http.MethodPost, h.url+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Client-ID", "psp")
	req.Header.Set("Idempotency-Key", key)
	resp, err := asGateway.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		h.t.Fatalf("POST %s: %d %s", path, resp.StatusCode, out)
	}
	return out
}

func (h *harness) account(vpa string, deposit int64) {
	h.post("/v1/accounts", "open-"+vpa, map[string]any{"vpa": vpa, "holder_name": "Holder"})
	if deposit > 0 {
		h.post("/v1/accounts/"+vpa+"/deposits", "fund-"+vpa, map[string]any{"amount_paise": deposit, "reference": "fund"})
	}
}

func (h *harness) pay(payer, payee string, amount int64) uuid.UUID {
	var p struct {
		PaymentID uuid.UUID `json:"payment_id"`
	}
	_ = json.Unmarshal(h.post("/v1/payments", uuid.NewString(), map[string]any{"payer_vpa": payer, "payee_vpa": payee, "amount_paise": amount}), &p)
	return p.PaymentID
}

// feed hands the workflow the next batch of the log, as the runner does; false when there was none.
func (h *harness) feed() bool {
	h.t.Helper()
	batch, err := h.store.ReadLog(h.ctx, h.pos, 100)
	if err != nil {
		h.t.Fatal(err)
	}
	if len(batch) == 0 {
		return false
	}
	if err := h.flow.Handle(h.ctx, batch); err != nil {
		h.t.Fatalf("handle: %v", err)
	}
	h.pos = batch[len(batch)-1].Position
	return true
}

// run feeds the log to the workflow until the payment has ended.
func (h *harness) run(pid uuid.UUID) {
	h.t.Helper()
	for h.ctx.Err() == nil {
		if !h.feed() {
			if h.outcome(pid) != "" {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	h.t.Fatalf("payment %s never ended", pid)
}

// outcome is "COMPLETED", "FAILED:CODE" or "" while the payment is open.
func (h *harness) outcome(pid uuid.UUID) string {
	var typ, code string
	err := h.pool.QueryRow(h.ctx, `select event_type, coalesce(payload->>'code', '') from events
		where aggregate_id = $1 and event_type in ('PaymentCompleted', 'PaymentFailed')`, pid.String()).Scan(&typ, &code)
	if err != nil {
		return ""
	}
	if typ == events.PaymentCompleted {
		return "COMPLETED"
	}
	return "FAILED:" + code
}

// trail lists the types of every event of the payment, on any stream, in log order.
func (h *harness) trail(pid uuid.UUID) []string {
	rows, err := h.pool.Query(h.ctx, `select event_type from events
		where aggregate_id = $1 or payload->>'payment_id' = $1 order by tx_id, global_position`, pid.String())
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		out = append(out, s)
	}
	return out
}

// balance folds an account's events.
func (h *harness) balance(vpa string) int64 {
	var b int64
	if err := h.pool.QueryRow(h.ctx, `select coalesce(sum(case event_type
			when 'AccountDebited' then -(payload->>'amount_paise')::bigint
			when 'DebitRejected' then 0 else (payload->>'amount_paise')::bigint end), 0)
		from events where aggregate_id = $1 and event_type <> 'AccountOpened'`, vpa).Scan(&b); err != nil {
		h.t.Fatal(err)
	}
	return b
}

// wantBalances fails the test unless the payer and payee folds hold these balances.
func (h *harness) wantBalances(payer, payee int64) {
	h.t.Helper()
	if got, gotPayee := h.balance("payer@bank"), h.balance("payee@bank"); got != payer || gotPayee != payee {
		h.t.Fatalf("balances: payer %d, payee %d; want %d, %d", got, gotPayee, payer, payee)
	}
}

func (h *harness) parked(pid uuid.UUID, step contract.StepName) (status, resolution string) {
	_ = h.pool.QueryRow(h.ctx, `select status, coalesce(resolution, '') from workflow_parked
		where payment_id = $1 and step = $2`, pid, step).Scan(&status, &resolution)
	return status, resolution
}

func equal(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func TestWorkflowCompletesAndFails(t *testing.T) {
	h := newHarness(t)
	h.account("payer@bank", 10000)
	h.account("payee@bank", 0)

	ok := h.pay("payer@bank", "payee@bank", 4000)
	h.run(ok)
	if got := h.outcome(ok); got != "COMPLETED" {
		t.Fatalf("outcome = %s", got)
	}
	broke := h.pay("payer@bank", "payee@bank", 6001)
	h.run(broke)
	if got := h.outcome(broke); got != "FAILED:"+events.CodeInsufficientFunds {
		t.Fatalf("overdraft outcome = %s", got)
	}
	h.wantBalances(6000, 4000)

	// The whole log handled again, as after a crash before the checkpoint: nothing moves twice.
	h.pos = eventstore.Start
	h.run(broke)
	h.wantBalances(6000, 4000)
	want := []string{events.PaymentInitiated, events.AccountDebited, events.AccountCredited, events.PaymentCompleted}
	if got := h.trail(ok); !equal(got, want) {
		t.Fatalf("trail = %v, want %v", got, want)
	}
}

// The answer to a step carries its event, and the workflow takes the step that event calls for at once:
// one batch of the log holding only a payment's initiation ends the payment, a call a step. When the
// steps' events come round in the log, they call for nothing more; a workflow that has forgotten them (a
// restart) takes their steps again, and they find their outcomes.
func TestWorkflowTakesTheNextStepFromTheAnswer(t *testing.T) {
	h := newHarness(t)
	h.account("payer@bank", 10000)
	h.account("payee@bank", 0)
	for h.feed() { // the openings and deposits: nothing to do
	}
	ok := h.pay("payer@bank", "payee@bank", 4000)
	broke := h.pay("payer@bank", "payee@bank", 6001)

	// The two initiations are the next batch, and the only events it holds.
	batch, err := h.store.ReadLog(h.ctx, h.pos, 100)
	if err != nil || len(batch) != 2 || batch[0].Type != events.PaymentInitiated || batch[1].Type != events.PaymentInitiated {
		t.Fatalf("batch = %d events, %v", len(batch), err)
	}
	if err := h.flow.Handle(h.ctx, batch); err != nil {
		t.Fatal(err)
	}
	h.pos = batch[len(batch)-1].Position
	if got := h.outcome(ok); got != "COMPLETED" {
		t.Fatalf("after one batch: outcome = %q, want COMPLETED", got)
	}
	if got := h.outcome(broke); got != "FAILED:"+events.CodeInsufficientFunds {
		t.Fatalf("after one batch: overdraft outcome = %q", got)
	}
	// debit both; credit one and fail the other; complete the first: three calls, five steps.
	if c, s := h.steps.calls.Load(), h.steps.sent.Load(); c != 3 || s != 5 {
		t.Fatalf("%d calls carrying %d steps, want 3 carrying 5", c, s)
	}
	want := []string{events.PaymentInitiated, events.AccountDebited, events.AccountCredited, events.PaymentCompleted}
	if got := h.trail(ok); !equal(got, want) {
		t.Fatalf("trail = %v, want %v", got, want)
	}

	// The steps' events come round: each step they call for was taken.
	for h.feed() {
	}
	if c := h.steps.calls.Load(); c != 3 {
		t.Fatalf("%d calls after the log came round, want still 3", c)
	}
	h.wantBalances(6000, 4000)

	// A restarted workflow (its memory gone) reads the same events again: their steps are replayed.
	h.flow = workflow.New(h.steps, postgres.NewParkedSteps(h.pool, slog.New(slog.NewTextHandler(io.Discard, nil))),
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), workflow.DefaultConfig)
	h.pos = eventstore.Start
	for h.feed() {
	}
	if c := h.steps.calls.Load(); c <= 3 {
		t.Fatalf("a restarted workflow made no call; it must take the log's steps again")
	}
	h.wantBalances(6000, 4000)
	if got := h.trail(ok); !equal(got, want) {
		t.Fatalf("trail after the replay = %v, want %v", got, want)
	}
}

func TestWorkflowReversesWhenThePayeeRefuses(t *testing.T) {
	h := newHarness(t)
	h.account("payer@bank", 10000)
	// A payment to a payee that has no account: the command service refuses such a payment at initiation,
	// so it is appended directly, as a log written by an older version might hold it.
	pid := uuid.New()
	if _, err := h.store.Append(h.ctx, events.AggregatePayment, pid.String(), eventstore.NoStream, []eventstore.NewEvent{{
		ID: uuid.New(), Type: events.PaymentInitiated, Metadata: events.Metadata{SchemaVersion: 1},
		Data: events.PaymentInitiatedV1{PaymentID: pid.String(), PayerVPA: "payer@bank", PayeeVPA: "ghost@bank", AmountPaise: 2500, ClientID: "psp"},
	}}); err != nil {
		t.Fatal(err)
	}
	h.run(pid)
	if got := h.outcome(pid); got != "FAILED:"+events.CodePayeeUnavailable {
		t.Fatalf("outcome = %s", got)
	}
	want := []string{events.PaymentInitiated, events.AccountDebited, events.DebitReversed, events.PaymentFailed}
	if got := h.trail(pid); !equal(got, want) {
		t.Fatalf("trail = %v, want %v", got, want)
	}
	if b := h.balance("payer@bank"); b != 10000 {
		t.Fatalf("payer balance = %d, want it whole again", b)
	}
}

func TestWorkflowParksAndCompensatesACreditThatKeepsFailing(t *testing.T) {
	h := newHarness(t)
	h.account("payer@bank", 10000)
	h.account("payee@bank", 0)
	h.steps.step.Store(contract.StepCredit)
	pid := h.pay("payer@bank", "payee@bank", 3000)
	h.run(pid)
	if got := h.outcome(pid); got != "FAILED:"+events.CodeProcessingError {
		t.Fatalf("outcome = %s", got)
	}
	h.wantBalances(10000, 0)
	if st, res := h.parked(pid, contract.StepCredit); st != "resolved" || res != "compensated: "+events.DebitReversed {
		t.Fatalf("parked row = %q %q", st, res)
	}
	if n := testutil.ToFloat64(h.flow.ParkedMetric(contract.StepCredit)); n != 1 {
		t.Fatalf("parked metric = %v", n)
	}
	// Once the failure is gone, a redelivered AccountDebited cannot credit the payee any more.
	h.steps.step.Store(contract.StepName(""))
	h.pos = eventstore.Start
	h.run(pid)
	h.wantBalances(10000, 0)
}

func TestWorkflowParksADebitThatKeepsFailing(t *testing.T) {
	h := newHarness(t)
	h.account("payer@bank", 10000)
	h.account("payee@bank", 0)
	h.steps.step.Store(contract.StepDebit)
	pid := h.pay("payer@bank", "payee@bank", 3000)
	h.run(pid)
	if got := h.outcome(pid); got != "FAILED:"+events.CodeProcessingError {
		t.Fatalf("outcome = %s", got)
	}
	want := []string{events.PaymentInitiated, events.DebitRejected, events.PaymentFailed}
	if got := h.trail(pid); !equal(got, want) {
		t.Fatalf("trail = %v, want %v", got, want)
	}
	// The debit step's id is burnt: a late debit finds the rejection and moves nothing.
	h.steps.step.Store(contract.StepName(""))
	res, err := h.steps.RunSteps(h.ctx, []contract.Step{{PaymentID: pid, Step: contract.StepDebit, Account: "payer@bank"}})
	if err != nil || !res[0].Replayed || res[0].EventType != events.DebitRejected {
		t.Fatalf("late debit = %+v, %v", res, err)
	}
	if b := h.balance("payer@bank"); b != 10000 {
		t.Fatalf("payer balance = %d", b)
	}
}

func TestWorkflowRetriesAParkedCompletion(t *testing.T) {
	h := newHarness(t)
	h.account("payer@bank", 10000)
	h.account("payee@bank", 0)
	h.steps.step.Store(contract.StepComplete)
	pid := h.pay("payer@bank", "payee@bank", 3000)
	// Money has moved, so the completion cannot be compensated: it stays parked and the batch moves on.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, _ := h.parked(pid, contract.StepComplete); st == "parked" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the completion was never parked")
		}
		if !h.feed() {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if got := h.outcome(pid); got != "" {
		t.Fatalf("outcome = %s while the completion is parked", got)
	}
	h.steps.step.Store(contract.StepName(""))
	if err := h.flow.RetryParkedOnce(h.ctx); err != nil {
		t.Fatal(err)
	}
	if got := h.outcome(pid); got != "COMPLETED" {
		t.Fatalf("outcome after the retry = %s", got)
	}
	if st, res := h.parked(pid, contract.StepComplete); st != "resolved" || res != "retried: "+events.PaymentCompleted {
		t.Fatalf("parked row = %q %q", st, res)
	}
	h.wantBalances(7000, 3000)
}
