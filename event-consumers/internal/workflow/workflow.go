// Package workflow is the payment process manager. It follows the event log and moves each payment on by
// one step per event, each step a command to the command service:
//
//	PaymentInitiated -> debit payer   -> AccountDebited  -> credit payee -> AccountCredited -> complete
//	                                  -> DebitRejected   -> fail (INSUFFICIENT_FUNDS)
//	                                     (credit impossible) -> reverse debit -> DebitReversed -> fail
//
// Delivery is at least once: a batch is handled, then checkpointed, and a crash in between handles it
// again. That is safe because every step's event id is derived from its payment and step, so a repeated
// step finds its earlier outcome in the log instead of moving money twice (docs/failure-handling.md).
package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"upi/shared/events"
	"upi/shared/eventstore"
	"upi/shared/observability"
	"upi/shared/problem"
)

// Name is the workflow's consumer name and checkpoint.
const Name = "payment-workflow"

// Action is the step an event calls for.
type Action struct {
	PaymentID uuid.UUID
	Step      string
	Body      StepBody
	// Cause is the event that called for the step.
	Cause uuid.UUID
}

// StepBody is the body of every step call. Code and Reason go with fail, reverse and reject-debit;
// CausationID names the event that called for the step, recorded in the new event's metadata.
type StepBody struct {
	Code        string `json:"code,omitempty"`
	Reason      string `json:"reason,omitempty"`
	CausationID string `json:"causation_id,omitempty"`
}

// Next is the heart of the process manager, and pure: the step that an event calls for, or nil.
func Next(e eventstore.Event) (*Action, error) {
	var pid string
	var step string
	var body StepBody
	switch e.Type {
	case events.PaymentInitiated, events.AccountDebited, events.DebitRejected, events.AccountCredited, events.DebitReversed:
	default:
		return nil, nil
	}
	p, err := events.Decode(e.Type, e.Payload)
	if err != nil {
		return nil, err
	}
	switch v := p.(type) {
	case events.PaymentInitiatedV1:
		pid, step = v.PaymentID, StepDebit
	case events.AccountDebitedV1:
		pid, step = v.PaymentID, StepCredit
	case events.DebitRejectedV1:
		pid, step, body = v.PaymentID, StepFail, StepBody{Code: v.Code, Reason: "the payer's debit was rejected"}
	case events.AccountCreditedV1:
		pid, step = v.PaymentID, StepComplete
	case events.DebitReversedV1:
		pid, step, body = v.PaymentID, StepFail, StepBody{Code: v.Code, Reason: "the payee could not be credited; the debit was reversed"}
	}
	id, err := uuid.Parse(pid)
	if err != nil {
		return nil, fmt.Errorf("%s %s: payment id %q: %w", e.Type, e.ID, pid, err)
	}
	body.CausationID = e.ID.String()
	return &Action{PaymentID: id, Step: step, Body: body, Cause: e.ID}, nil
}

// compensation is what a parked step is replaced by, so that its payment still ends: a debit that cannot
// be made is burnt (a later debit then finds it rejected), a credit that cannot be made is replaced by the
// debit's reversal. Steps after the money moved have none: they stay parked and are retried.
func compensation(a Action) (string, StepBody, bool) {
	body := StepBody{Code: events.CodeProcessingError, CausationID: a.Cause.String()}
	switch a.Step {
	case StepDebit:
		body.Reason = "the debit step kept failing"
		return StepRejectDebit, body, true
	case StepCredit:
		body.Reason = "the credit step kept failing"
		return StepReverse, body, true
	}
	return "", StepBody{}, false
}

// payeeRefused reports whether a credit was refused by the payee's account itself (404 ACCOUNT_NOT_FOUND, or
// 422: the credit would take its balance beyond the limit). Those refusals are final.
func payeeRefused(a Action, err error) bool {
	var se *StepError
	return a.Step == StepCredit && errors.As(err, &se) &&
		(se.Code == problem.CodeAccountNotFound || se.Status == http.StatusUnprocessableEntity)
}

// Config tunes the workflow.
type Config struct {
	// Parallel is how many payments are moved on at once within a batch.
	Parallel int
	// LastingAttempts is how many times a step that fails for a lasting reason is tried before it is parked.
	LastingAttempts int
	// TransientAttempts is how many times an unreachable command service is retried within one batch
	// before the batch is handed back to the runner to retry with back-off (nothing is parked for that).
	TransientAttempts int
	// Backoff is the first retry delay, doubled on each retry up to 2s.
	Backoff time.Duration
	// RetryParkedEvery is how often parked steps are retried.
	RetryParkedEvery time.Duration
}

// DefaultConfig is the configuration of the service.
var DefaultConfig = Config{Parallel: 32, LastingAttempts: 5, TransientAttempts: 4, Backoff: 25 * time.Millisecond,
	RetryParkedEvery: 30 * time.Second}

// Workflow is the process manager: a runner Processor.
type Workflow struct {
	steps   Steps
	pool    *pgxpool.Pool
	log     *slog.Logger
	cfg     Config
	metrics metrics
}

type metrics struct {
	steps    *prometheus.CounterVec
	outcomes *prometheus.CounterVec
	parked   *prometheus.CounterVec
	open     prometheus.Gauge
}

// New returns the workflow. pool holds the parked-steps table.
func New(steps Steps, pool *pgxpool.Pool, log *slog.Logger, reg prometheus.Registerer, cfg Config) *Workflow {
	m := metrics{
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workflow_steps_total",
			Help: "Workflow step calls, by step and result (ok, replayed, transient_error, lasting_error)."},
			[]string{"step", "result"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workflow_payments_finished_total",
			Help: "Payments the workflow ended, by status and failure code."}, []string{"status", "code"}),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workflow_steps_parked_total",
			Help: "Steps parked after failing for a lasting reason, by step."}, []string{"step"}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "workflow_parked_open",
			Help: "Parked steps not yet resolved."}),
	}
	reg.MustRegister(m.steps, m.outcomes, m.parked, m.open)
	return &Workflow{steps: steps, pool: pool, log: log, cfg: cfg, metrics: m}
}

// Name is the consumer's name.
func (w *Workflow) Name() string { return Name }

// Handle moves on every payment that the batch's events concern. Payments are handled in parallel, the
// events of one payment in log order. An error (only ever the command service being unreachable) hands
// the whole batch back to the runner, which retries it; steps already done are then found done.
func (w *Workflow) Handle(ctx context.Context, batch []eventstore.Event) error {
	var order []uuid.UUID
	byPayment := map[uuid.UUID][]Action{}
	for _, e := range batch {
		a, err := Next(e)
		if err != nil {
			// An event the workflow cannot read is a bug or a corrupt log: never skip it silently.
			return fmt.Errorf("workflow: %w", err)
		}
		if a == nil {
			continue
		}
		if _, seen := byPayment[a.PaymentID]; !seen {
			order = append(order, a.PaymentID)
		}
		byPayment[a.PaymentID] = append(byPayment[a.PaymentID], *a)
	}
	sem := make(chan struct{}, max(1, w.cfg.Parallel))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for _, pid := range order {
		actions := byPayment[pid]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			pctx := observability.WithCorrelationID(ctx, pid.String())
			for _, a := range actions {
				if err := w.perform(pctx, a); err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// perform runs one step to an outcome: done, parked (and compensated where possible), or a transient
// error that the runner retries.
func (w *Workflow) perform(ctx context.Context, a Action) error {
	delay := w.cfg.Backoff
	transient, lasting := 0, 0
	for {
		res, err := w.steps.Run(ctx, a.PaymentID, a.Step, a.Body)
		if err == nil {
			w.record(ctx, a, res)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if isTransient(err) {
			w.metrics.steps.WithLabelValues(a.Step, "transient_error").Inc()
			if transient++; transient >= w.cfg.TransientAttempts {
				return fmt.Errorf("payment %s: %w", a.PaymentID, err)
			}
		} else if payeeRefused(a, err) {
			// The payee's account itself refuses the credit (gone, or at its limit): no retry can help,
			// so the debit is reversed now and the payment fails with PAYEE_UNAVAILABLE.
			w.metrics.steps.WithLabelValues(a.Step, "refused").Inc()
			w.log.WarnContext(ctx, "payee refused the credit; reversing the debit", "err", err)
			a = Action{PaymentID: a.PaymentID, Step: StepReverse, Cause: a.Cause, Body: StepBody{
				Code: events.CodePayeeUnavailable, Reason: "the payee could not be credited", CausationID: a.Body.CausationID}}
			transient, lasting, delay = 0, 0, w.cfg.Backoff
			continue
		} else {
			w.metrics.steps.WithLabelValues(a.Step, "lasting_error").Inc()
			if lasting++; lasting >= w.cfg.LastingAttempts {
				return w.park(ctx, a, err)
			}
		}
		w.log.WarnContext(ctx, "workflow step failed; retrying", "step", a.Step, "err", err, "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

func (w *Workflow) record(ctx context.Context, a Action, res StepResult) {
	result := "ok"
	if res.Replayed {
		result = "replayed"
	}
	w.metrics.steps.WithLabelValues(a.Step, result).Inc()
	if res.Replayed {
		return
	}
	switch res.EventType {
	case events.PaymentCompleted:
		w.metrics.outcomes.WithLabelValues("COMPLETED", "").Inc()
	case events.PaymentFailed:
		w.metrics.outcomes.WithLabelValues("FAILED", a.Body.Code).Inc()
	}
	w.log.DebugContext(ctx, "workflow step", "step", a.Step, "outcome", res.EventType)
}

// park records a step that keeps failing for a lasting reason, so that it stops holding back the payments
// behind it, and compensates where the payment can still end without money moved.
func (w *Workflow) park(ctx context.Context, a Action, cause error) error {
	w.metrics.parked.WithLabelValues(a.Step).Inc()
	retryStep, retryBody, compensable := compensation(a)
	if !compensable {
		retryStep, retryBody = a.Step, a.Body
	}
	body, err := json.Marshal(retryBody)
	if err != nil {
		return fmt.Errorf("park %s of %s: %w", a.Step, a.PaymentID, err)
	}
	w.log.ErrorContext(ctx, "workflow step parked", "step", a.Step, "reason", cause.Error(),
		"then", retryStep, "payment_id", a.PaymentID.String())
	if _, err := w.pool.Exec(ctx, `
		insert into workflow_parked (payment_id, step, cause_event_id, reason, retry_step, retry_body)
		values ($1, $2, $3, $4, $5, $6)
		on conflict (payment_id, step) do update
		set reason = excluded.reason, attempts = workflow_parked.attempts + 1, status = 'parked', updated_at = now()`,
		a.PaymentID, a.Step, a.Cause, cause.Error(), retryStep, body); err != nil {
		return fmt.Errorf("park %s of %s: %w", a.Step, a.PaymentID, err)
	}
	if compensable {
		res, err := w.steps.Run(ctx, a.PaymentID, retryStep, retryBody)
		if err != nil {
			w.log.ErrorContext(ctx, "compensation failed; left parked for retry", "step", retryStep, "err", err)
			return nil
		}
		w.metrics.steps.WithLabelValues(retryStep, "ok").Inc()
		return w.resolve(ctx, a.PaymentID, a.Step, "compensated: "+res.EventType)
	}
	return nil
}

func (w *Workflow) resolve(ctx context.Context, paymentID uuid.UUID, step, how string) error {
	_, err := w.pool.Exec(ctx, `update workflow_parked set status = 'resolved', resolution = $3, updated_at = now()
		where payment_id = $1 and step = $2`, paymentID, step, how)
	if err != nil {
		return fmt.Errorf("resolve parked %s of %s: %w", step, paymentID, err)
	}
	return nil
}

// RetryParked retries parked steps (or their compensations) every RetryParkedEvery until ctx ends, and
// keeps the open-parked gauge current.
func (w *Workflow) RetryParked(ctx context.Context) {
	t := time.NewTicker(w.cfg.RetryParkedEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := w.retryParkedOnce(ctx); err != nil && ctx.Err() == nil {
			w.log.WarnContext(ctx, "retry of parked steps failed", "err", err)
		}
	}
}

func (w *Workflow) retryParkedOnce(ctx context.Context) error {
	rows, err := w.pool.Query(ctx, `select payment_id, step, retry_step, retry_body from workflow_parked
		where status = 'parked' order by parked_at limit 100`)
	if err != nil {
		return err
	}
	type parked struct {
		pid             uuid.UUID
		step, retryStep string
		body            json.RawMessage
	}
	var list []parked
	for rows.Next() {
		var p parked
		if err := rows.Scan(&p.pid, &p.step, &p.retryStep, &p.body); err != nil {
			rows.Close()
			return err
		}
		list = append(list, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, p := range list {
		res, err := w.steps.Run(observability.WithCorrelationID(ctx, p.pid.String()), p.pid, p.retryStep, p.body)
		if err != nil {
			continue
		}
		if err := w.resolve(ctx, p.pid, p.step, "retried: "+res.EventType); err != nil {
			return err
		}
	}
	var open float64
	if err := w.pool.QueryRow(ctx, `select count(*) from workflow_parked where status = 'parked'`).Scan(&open); err != nil {
		return err
	}
	w.metrics.open.Set(open)
	return nil
}
