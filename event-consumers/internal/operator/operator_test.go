package operator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"upi/event-consumers/internal/adapters/postgres"
	"upi/event-consumers/internal/adapters/postgres/projections"
	"upi/event-consumers/internal/app/workflow"
	"upi/event-consumers/internal/operator"
	"upi/event-consumers/internal/runner"
	"upi/event-consumers/internal/workload"
	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/eventstore"
	"upi/testenv"
)

// fixable stands in for the command service: a step is refused (500) until fixed.
type fixable struct{ fixed atomic.Bool }

func (f *fixable) RunSteps(_ context.Context, steps []contract.Step) ([]contract.StepResult, error) {
	out := make([]contract.StepResult, len(steps))
	for i, st := range steps {
		out[i] = contract.StepResult{PaymentID: st.PaymentID, Step: st.Step, EventType: "PaymentCompleted"}
		if !f.fixed.Load() {
			out[i] = contract.StepResult{PaymentID: st.PaymentID, Step: st.Step,
				Problem: problem.New(http.StatusInternalServerError, problem.CodeInternal, "still broken")}
		}
	}
	return out, nil
}

type cli struct {
	t  *testing.T
	op *operator.Operator
}

// run runs one command line and returns what it printed, failing the test on an error.
func (c *cli) run(args ...string) string {
	c.t.Helper()
	out, err := c.try(args...)
	if err != nil {
		c.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *cli) try(args ...string) (string, error) {
	var buf bytes.Buffer
	c.op.Out = &buf
	err := c.op.Run(context.Background(), args)
	return buf.String(), err
}

func contains(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("output lacks %q:\n%s", w, out)
		}
	}
}

func newCLI(t *testing.T, pool *pgxpool.Pool, steps workflow.Steps) *cli {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	parked := postgres.NewParkedSteps(pool, log)
	flow := workflow.New(steps, parked, log, prometheus.NewRegistry(), workflow.DefaultConfig)
	return &cli{t: t, op: &operator.Operator{Pool: pool, Parked: parked, Workflow: flow,
		Projections: []runner.Projection{projections.Accounts{}, projections.Payments{}},
		Consumers:   []string{"accounts", "payments", workflow.Name, "event-feed"}, ReleaseWait: 20 * time.Second}}
}

// Parked steps: listed with their reason and when they are next due; one retried at once after the
// fix is resolved; one given up is failed and no longer listed as open.
func TestOperatorParkedSteps(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	steps := &fixable{}
	c := newCLI(t, pool, steps)
	ctx := context.Background()
	a, b := uuid.New(), uuid.New()
	for _, pid := range []uuid.UUID{a, b} {
		st := contract.Step{PaymentID: pid, Step: contract.StepComplete, CausationID: uuid.NewString()}
		if err := c.op.Parked.Park(ctx, st, st, "complete: 500 INTERNAL: boom"); err != nil {
			t.Fatal(err)
		}
	}
	contains(t, c.run("parked", "list"), a.String(), b.String(), "complete: 500 INTERNAL: boom", "due")

	// A retry before the fix fails, and pushes the step's next attempt back.
	out := c.run("parked", "retry", a.String(), "complete")
	t.Logf("parked retry:\n%s", out)
	contains(t, out, a.String(), "parked", "still broken", "in ")
	steps.fixed.Store(true)
	contains(t, c.run("parked", "retry", a.String(), "complete"), a.String(), "resolved", "retried: PaymentCompleted")

	contains(t, c.run("parked", "fail", b.String(), "complete", "payee", "bank", "closed"), "force-failed")
	if out := c.run("parked", "list"); out != "no parked steps\n" {
		t.Fatalf("open parked steps after the retry and the fail:\n%s", out)
	}
	contains(t, c.run("parked", "list", "--all"), "force-failed: payee bank closed", "resolved")
	if _, err := c.try("parked", "fail", b.String(), "complete", "again"); err == nil {
		t.Fatal("failing a step no longer parked: no error")
	}
	if _, err := c.try("parked", "retry", "not-an-id", "complete"); !errors.Is(err, operator.ErrUsage) {
		t.Fatalf("a bad id: %v, want a usage error", err)
	}
}

// poisoned is the accounts projection with a bug while broken: it cannot apply one account's third event.
type poisoned struct {
	projections.Accounts
	broken atomic.Bool
	vpa    string
}

func (p *poisoned) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	for _, e := range batch {
		if p.broken.Load() && e.AggregateID == p.vpa && e.Version == 3 {
			return fmt.Errorf("cannot apply %s v%d: injected bug", e.AggregateID, e.Version)
		}
	}
	return p.Accounts.Apply(ctx, tx, batch)
}

// Quarantine through the command line: the held event with its error, a release refused while the cause
// lasts (with the error), then a release after the fix; a payment's workflow state; checkpoints listed and
// a processor's reset.
func TestOperatorQuarantinePaymentAndCheckpoints(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	c := newCLI(t, pool, &fixable{})
	bank := workload.New(eventstore.New(pool))
	for _, vpa := range []string{"sick@okbank", "well@okbank"} {
		if _, err := bank.Open(ctx, vpa, "psp"); err != nil {
			t.Fatal(err)
		}
		if _, err := bank.Deposit(ctx, vpa, 10000); err != nil {
			t.Fatal(err)
		}
	}
	p := &poisoned{vpa: "sick@okbank"}
	p.broken.Store(true)
	r := runner.New(pool, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(),
		runner.Options{BatchSize: 50, LockRetry: 50 * time.Millisecond, MonitorEvery: 100 * time.Millisecond})
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.Run(rctx, p) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	if _, err := bank.Deposit(ctx, "sick@okbank", 100); err != nil {
		t.Fatal(err)
	}
	pid, _, err := bank.Pay(ctx, "well@okbank", "sick@okbank", 500, false)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(c.run("quarantine", "list"), "AccountCredited") {
		if time.Now().After(deadline) {
			t.Fatalf("never quarantined:\n%s", c.run("quarantine", "list"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	contains(t, c.run("quarantine", "list", "accounts"), "sick@okbank", "FundsDeposited", "injected bug",
		"AccountCredited", "waits behind")

	_, err = c.try("quarantine", "release", "accounts", "sick@okbank")
	if err == nil || !strings.Contains(err.Error(), "injected bug") {
		t.Fatalf("release before the fix: %v, want the event's error", err)
	}
	p.broken.Store(false)
	contains(t, c.run("quarantine", "release", "accounts", "sick@okbank"), "released")
	contains(t, c.run("quarantine", "list"), "no events in quarantine")
	contains(t, c.run("quarantine", "list", "--all"), "released")
	var balance int64
	if err := pool.QueryRow(ctx, `select balance_paise from accounts where vpa = 'sick@okbank'`).Scan(&balance); err != nil {
		t.Fatal(err)
	}
	if balance != 10600 {
		t.Fatalf("balance after the release %d, want 10600", balance)
	}

	out := c.run("payment", pid)
	t.Logf("payment %s:\n%s", pid, out)
	contains(t, out, "payment "+pid+": COMPLETED", "PaymentInitiated v1", "debit", "AccountDebited", "credit",
		"AccountCredited", "complete", "PaymentCompleted", "not yet read", "parked steps: none")

	contains(t, c.run("checkpoint", "list"), "accounts", workflow.Name, "(none: never ran)")
	head, err := workload.LastPosition(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	contains(t, c.run("checkpoint", "reset", workflow.Name, head.Token()), workflow.Name+": checkpoint", "-> "+head.Token())
	if !strings.Contains(c.run("payment", pid), "handled") {
		t.Fatal("after moving the workflow's checkpoint past the payment, its events are not shown handled")
	}
	if _, err := c.try("checkpoint", "reset", "accounts", head.Token()); !errors.Is(err, operator.ErrUsage) {
		t.Fatalf("a projection reset to a position: %v, want refused", err)
	}
	// A projection reset to the start is emptied and filled again by its live worker, to the same rows.
	contains(t, c.run("checkpoint", "reset", "accounts", "start"), "emptied accounts, account_transactions")
	deadline = time.Now().Add(20 * time.Second)
	for {
		err := pool.QueryRow(ctx, `select balance_paise from accounts where vpa = 'sick@okbank'`).Scan(&balance)
		if err == nil && balance == 10600 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the reset, sick@okbank's balance is %d (%v), want 10600 again", balance, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := workload.VerifyBalances(ctx, pool, bank.Expected()); err != nil {
		t.Fatal(err)
	}
}

// The binary runs the commands: a list answers, a bad command line prints the usage and fails. (In
// development mode, as testenv runs the services: the test database's login has no password.)
func TestOperatorBinary(t *testing.T) {
	t.Parallel()
	_, url := testenv.PostgresPool(t)
	bin := testenv.Binary(t, "event-consumers")
	cmd := exec.Command(bin, "parked", "list")
	cmd.Env = append(cmd.Environ(), "DATABASE_URL="+url, "LOG_LEVEL=warn", "UPI_ENV=development")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "no parked steps") {
		t.Fatalf("parked list: %v\n%s", err, out)
	}
	help := exec.Command(bin, "help")
	help.Env = append(help.Environ(), "DATABASE_URL="+url, "LOG_LEVEL=warn", "UPI_ENV=development")
	if out, err := help.CombinedOutput(); err != nil || !strings.Contains(string(out), "parked retry PAYMENT_ID STEP") {
		t.Fatalf("help: %v\n%s", err, out)
	}
	cmd = exec.Command(bin, "quarantine", "frobnicate")
	cmd.Env = append(cmd.Environ(), "DATABASE_URL="+url, "LOG_LEVEL=warn", "UPI_ENV=development")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "quarantine release CONSUMER STREAM") {
		t.Fatalf("a bad command line: %v\n%s", err, out)
	}
}
