package workflow_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"upi/event-consumers/internal/adapters/postgres"
	"upi/event-consumers/internal/app/workflow"
	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/problem"
	"upi/shared/platform/eventstore"
	"upi/testenv"
)

// verdicts stands in for the command service: it answers a step done when its payment is in ok, else
// with a lasting failure, and counts the calls per payment.
type verdicts struct {
	mu    sync.Mutex
	ok    map[uuid.UUID]bool
	calls map[uuid.UUID]int
}

func (v *verdicts) RunSteps(_ context.Context, steps []contract.Step) ([]contract.StepResult, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]contract.StepResult, len(steps))
	for i, st := range steps {
		v.calls[st.PaymentID]++
		out[i] = contract.StepResult{PaymentID: st.PaymentID, Step: st.Step, EventType: "PaymentCompleted"}
		if !v.ok[st.PaymentID] {
			out[i].EventType = ""
			out[i].Problem = problem.New(http.StatusInternalServerError, problem.CodeInternal, "still broken")
		}
	}
	return out, nil
}

// 150 parked steps that keep failing, parked before one that would go through: the newer one is retried
// and resolved within two rounds (one round takes 100), each failing step is retried once in those rounds
// and then waits out its back-off, which grows with its failures.
func TestParkedStepsAreRetriedFairlyWithBackoff(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	parking := postgres.NewParkedSteps(pool, log)
	v := &verdicts{ok: map[uuid.UUID]bool{}, calls: map[uuid.UUID]int{}}
	cfg := workflow.Config{LastingAttempts: 1, TransientAttempts: 2, Backoff: time.Millisecond,
		RetryParkedEvery: time.Minute, RetryParkedMax: 10 * time.Minute}
	flow := workflow.New(v, parking, log, prometheus.NewRegistry(), cfg)

	park := func(pid uuid.UUID) {
		st := contract.Step{PaymentID: pid, Step: contract.StepComplete, CausationID: uuid.NewString()}
		if err := parking.Park(ctx, st, st, "injected"); err != nil {
			t.Fatal(err)
		}
	}
	var broken []uuid.UUID
	for range 150 {
		pid := uuid.New()
		broken = append(broken, pid)
		park(pid)
	}
	if _, err := pool.Exec(ctx, `update workflow_parked set parked_at = now() - interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	fixable := uuid.New()
	v.ok[fixable] = true
	park(fixable)

	for round := range 3 {
		if err := flow.RetryParkedOnce(ctx); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	var status string
	if err := pool.QueryRow(ctx, `select status from workflow_parked where payment_id = $1`, fixable).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if status != "resolved" {
		t.Fatalf("the newer parked step is %q after three rounds behind 150 failing ones, want resolved", status)
	}
	for _, pid := range broken {
		if n := v.calls[pid]; n != 1 {
			t.Fatalf("a failing parked step was tried %d times in three rounds, want once (then its back-off)", n)
		}
	}

	// Each failure pushes the next attempt further: 1 min after the first failed retry, then 2, 4, ...
	var attempts int
	var wait time.Duration
	if err := pool.QueryRow(ctx, `select attempts, extract(epoch from next_attempt_at - now())::float8 * 1e9
		from workflow_parked where payment_id = $1`, broken[0]).Scan(&attempts, &wait); err != nil {
		t.Fatal(err)
	}
	if attempts != 2 || wait < 50*time.Second || wait > time.Minute {
		t.Fatalf("after one failed retry: attempts %d, next in %v; want 2 and about 1 min", attempts, wait)
	}
	if _, err := pool.Exec(ctx, `update workflow_parked set next_attempt_at = now() where status = 'parked'`); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := flow.RetryParkedOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := pool.QueryRow(ctx, `select attempts, extract(epoch from next_attempt_at - now())::float8 * 1e9
		from workflow_parked where payment_id = $1`, broken[0]).Scan(&attempts, &wait); err != nil {
		t.Fatal(err)
	}
	if attempts != 3 || wait < 110*time.Second || wait > 2*time.Minute {
		t.Fatalf("after two failed retries: attempts %d, next in %v; want 3 and about 2 min", attempts, wait)
	}
}

// down is a command service that does not answer.
type down struct{}

func (down) RunSteps(context.Context, []contract.Step) ([]contract.StepResult, error) {
	return nil, fmt.Errorf("dial: connection refused: %w", workflow.ErrUnavailable)
}

// An event the workflow cannot read is a lasting failure of that event (the runner quarantines it); the
// command service being down is not (the batch is retried as it is).
func TestWorkflowSaysWhichFailuresAreLasting(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := workflow.Config{LastingAttempts: 1, TransientAttempts: 1, Backoff: time.Millisecond}
	flow := workflow.New(down{}, nil, log, prometheus.NewRegistry(), cfg)
	unreadable := eventstore.Event{ID: uuid.New(), Type: events.PaymentInitiated, AggregateType: events.AggregatePayment,
		AggregateID: uuid.NewString(), Version: 1, Payload: []byte(`{"amount_paise": "a lot"}`)}
	err := flow.Handle(context.Background(), []eventstore.Event{unreadable})
	if err == nil || !flow.Lasting(err) {
		t.Fatalf("an undecodable PaymentInitiated: %v, lasting %v; want a lasting error", err, err != nil && flow.Lasting(err))
	}
	pid := uuid.New()
	readable := eventstore.Event{ID: uuid.New(), Type: events.PaymentInitiated, AggregateType: events.AggregatePayment,
		AggregateID: pid.String(), Version: 1,
		Payload: []byte(`{"payment_id":"` + pid.String() + `","payer_vpa":"a@bank","payee_vpa":"b@bank","amount_paise":100}`)}
	err = flow.Handle(context.Background(), []eventstore.Event{readable})
	if err == nil || flow.Lasting(err) {
		t.Fatalf("the command service down: %v, lasting %v; want an error that is not lasting", err, err != nil && flow.Lasting(err))
	}
}
