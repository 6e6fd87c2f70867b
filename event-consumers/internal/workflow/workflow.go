// Package workflow is the payment process manager. It follows the event log and moves each payment on by
// one step per event; the steps a batch of the log calls for go to the command service in one call
// (contract.PathSteps), which applies them together:
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
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/problem"
	"upi/shared/platform/eventstore"
	"upi/shared/platform/observability"
)

// Name is the workflow's consumer name and checkpoint.
const Name = "payment-workflow"

// Next is the heart of the process manager, and pure: the step that an event calls for, or nil. The step
// names the account it moves money on, as the event names it, and the event that called for it.
func Next(e eventstore.Event) (*contract.Step, error) {
	if st, err := nextRefund(e); st != nil || err != nil {
		return st, err
	}
	switch e.Type {
	case events.PaymentInitiated, events.AccountDebited, events.DebitRejected, events.AccountCredited, events.DebitReversed:
	default:
		return nil, nil
	}
	p, err := events.Decode(e.Type, e.Payload)
	if err != nil {
		return nil, err
	}
	var pid string
	var st contract.Step
	switch v := p.(type) {
	case events.PaymentInitiatedV1:
		pid, st = v.PaymentID, contract.Step{Step: contract.StepDebit, Account: v.PayerVPA}
	case events.AccountDebitedV1:
		pid, st = v.PaymentID, contract.Step{Step: contract.StepCredit, Account: v.CounterpartyVPA}
	case events.DebitRejectedV1:
		pid, st = v.PaymentID, contract.Step{Step: contract.StepFail, Code: v.Code, Reason: "the payer's debit was rejected"}
	case events.AccountCreditedV1:
		pid, st = v.PaymentID, contract.Step{Step: contract.StepComplete}
	case events.DebitReversedV1:
		pid, st = v.PaymentID, contract.Step{Step: contract.StepFail, Code: v.Code, Reason: "the payee could not be credited; the debit was reversed"}
	}
	if st.PaymentID, err = uuid.Parse(pid); err != nil {
		return nil, fmt.Errorf("%s %s: payment id %q: %w", e.Type, e.ID, pid, err)
	}
	st.CausationID = e.ID.String()
	return &st, nil
}

// nextRefund is Next for the refund saga, the payment's in reverse:
//
//	RefundReserved (payment) -> open -> RefundInitiated -> debit payee -> RefundDebited -> credit payer
//	  -> RefundCredited -> complete -> RefundCompleted -> record on the payment (RefundSettled)
//	RefundDebitRejected -> fail; RefundDebitReversed -> fail; RefundFailed -> record (releases the reservation)
func nextRefund(e eventstore.Event) (*contract.Step, error) {
	switch e.Type {
	case events.RefundReserved, events.RefundInitiated, events.RefundDebited, events.RefundDebitRejected,
		events.RefundCredited, events.RefundDebitReversed, events.RefundCompleted, events.RefundFailed:
	default:
		return nil, nil
	}
	p, err := events.Decode(e.Type, e.Payload)
	if err != nil {
		return nil, err
	}
	t, _ := events.Refund(p)
	var st contract.Step
	switch v := p.(type) {
	case events.RefundReservedV1:
		st = contract.Step{Step: contract.StepRefundOpen}
	case events.RefundInitiatedV1:
		st = contract.Step{Step: contract.StepRefundDebit, Account: t.PayeeVPA}
	case events.RefundDebitedV1:
		st = contract.Step{Step: contract.StepRefundCredit, Account: t.PayerVPA}
	case events.RefundDebitRejectedV1:
		st = contract.Step{Step: contract.StepRefundFail, Code: v.Code, Reason: "the payee's refund debit was rejected"}
	case events.RefundCreditedV1:
		st = contract.Step{Step: contract.StepRefundComplete}
	case events.RefundDebitReversedV1:
		st = contract.Step{Step: contract.StepRefundFail, Code: v.Code, Reason: "the payer could not be credited; the refund debit was reversed"}
	case events.RefundCompletedV1, events.RefundFailedV1:
		st = contract.Step{Step: contract.StepRefundRecord}
	}
	if st.PaymentID, err = uuid.Parse(t.PaymentID); err != nil {
		return nil, fmt.Errorf("%s %s: payment id %q: %w", e.Type, e.ID, t.PaymentID, err)
	}
	if st.RefundID, err = uuid.Parse(t.RefundID); err != nil {
		return nil, fmt.Errorf("%s %s: refund id %q: %w", e.Type, e.ID, t.RefundID, err)
	}
	st.CausationID = e.ID.String()
	return &st, nil
}

// compensation is what a parked step is replaced by, so that its payment still ends: a debit that cannot
// be made is burnt (a later debit then finds it rejected), a credit that cannot be made is replaced by the
// debit's reversal. Steps after the money moved have none: they stay parked and are retried.
func compensation(st contract.Step) (contract.Step, bool) {
	c := contract.Step{PaymentID: st.PaymentID, RefundID: st.RefundID, Code: events.CodeProcessingError, CausationID: st.CausationID,
		TraceParent: st.TraceParent}
	switch st.Step {
	case contract.StepRefundDebit:
		c.Step, c.Account, c.Reason = contract.StepRefundRejectDebit, st.Account, "the refund debit step kept failing"
		return c, true
	case contract.StepRefundCredit:
		// The credit names the payer; the reversal is the payee's, which the command service looks up.
		c.Step, c.Reason = contract.StepRefundReverse, "the refund credit step kept failing"
		return c, true
	case contract.StepDebit:
		c.Step, c.Account, c.Reason = contract.StepRejectDebit, st.Account, "the debit step kept failing"
		return c, true
	case contract.StepCredit:
		// The credit names the payee; the reversal is the payer's, which the command service looks up.
		c.Step, c.Reason = contract.StepReverse, "the credit step kept failing"
		return c, true
	}
	return contract.Step{}, false
}

// payeeRefused reports whether a credit was refused by the payee's account itself (404 ACCOUNT_NOT_FOUND,
// or 422: the credit would take its balance beyond the limit). Those refusals are final.
func payeeRefused(st contract.Step, p *problem.Problem) bool {
	return (st.Step == contract.StepCredit || st.Step == contract.StepRefundCredit) &&
		(p.Code == problem.CodeAccountNotFound || p.Status == http.StatusUnprocessableEntity)
}

// Config tunes the workflow.
type Config struct {
	// LastingAttempts is how many times a step that fails for a lasting reason is tried before it is parked.
	LastingAttempts int
	// TransientAttempts is how many rounds a transient failure (the command service unreachable, or its
	// database) is retried within one batch before the batch is handed back to the runner to retry with
	// back-off (nothing is parked for that).
	TransientAttempts int
	// Backoff is the first retry delay, doubled on each retry up to 2s.
	Backoff time.Duration
	// RetryParkedEvery is how often parked steps are retried.
	RetryParkedEvery time.Duration
}

// DefaultConfig is the configuration of the service.
var DefaultConfig = Config{LastingAttempts: 5, TransientAttempts: 4, Backoff: 25 * time.Millisecond,
	RetryParkedEvery: 30 * time.Second}

// Workflow is the process manager: a runner Processor.
type Workflow struct {
	steps   Steps
	pool    *pgxpool.Pool
	log     *slog.Logger
	cfg     Config
	metrics metrics
	// tracer is set when tracing is on (observability.Tracing when New ran); nil, no step is traced.
	tracer trace.Tracer
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
			Help: "Workflow steps, by step and result (ok, replayed, refused, transient_error, lasting_error)."},
			[]string{"step", "result"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workflow_payments_finished_total",
			Help: "Payments the workflow ended, by status and failure code."}, []string{"status", "code"}),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workflow_steps_parked_total",
			Help: "Steps parked after failing for a lasting reason, by step."}, []string{"step"}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "workflow_parked_open",
			Help: "Parked steps not yet resolved."}),
	}
	reg.MustRegister(m.steps, m.outcomes, m.parked, m.open)
	w := &Workflow{steps: steps, pool: pool, log: log, cfg: cfg, metrics: m}
	if observability.Tracing() {
		w.tracer = observability.Tracer("event-consumers/workflow")
	}
	return w
}

// Name is the consumer's name.
func (w *Workflow) Name() string { return Name }

// task is a step on its way to an outcome within one batch.
type task struct {
	step    contract.Step
	lasting int // lasting failures so far
	// resolves names the parked step that this one compensates or retries, when it does.
	resolves *parked
	// span is the step's span when traced (see Handle), also carried by what replaces the step.
	span trace.Span
}

// parked is the key of a row of workflow_parked: its payment_id column holds the step's saga key
// (contract.Step.Key: the refund's id for a refund step).
type parked struct {
	paymentID uuid.UUID
	step      contract.StepName
}

// Handle moves on every payment that the batch's events concern: the steps they call for go to the
// command service together, in one call, and are applied there in one transaction. Steps that fail are
// retried together; one that keeps failing for a lasting reason is parked (and compensated where the
// payment can still end without money moved), so it stops holding back the others. An error (only ever
// the command service or its database unavailable) hands the whole batch back to the runner, which
// retries it; steps already done are then found done.
//
// Traced, each step has a span of its own, a child of the span that appended its event (the event's
// metadata keeps its traceparent), and the step carries that span's traceparent to the command service,
// whose event records it: so a payment's initiation, debit, credit and completion form one trace, however
// the log batches them. A call that serves one step is a child of that step's span; a call that serves
// several (many payments' traces) is a root span of its own, linked to each step's span.
func (w *Workflow) Handle(ctx context.Context, batch []eventstore.Event) error {
	var tasks []*task
	for _, e := range batch {
		st, err := Next(e)
		if err != nil {
			// An event the workflow cannot read is a bug or a corrupt log: never skip it silently.
			return fmt.Errorf("workflow: %w", err)
		}
		if st != nil {
			t := &task{step: *st}
			if w.tracer != nil {
				w.startSpan(ctx, t, e)
				defer t.span.End()
			}
			tasks = append(tasks, t)
		}
	}
	return w.run(ctx, tasks)
}

// startSpan starts t's span as a child of the span that appended e, and names it in t's step.
func (w *Workflow) startSpan(ctx context.Context, t *task, e eventstore.Event) {
	var meta struct {
		TraceParent string `json:"traceparent"`
	}
	// Metadata without a (readable) traceparent only costs the step its parent: its span starts a trace.
	_ = json.Unmarshal(e.Metadata, &meta)
	attrs := []attribute.KeyValue{attribute.String("upi.payment_id", t.step.PaymentID.String()),
		attribute.String("upi.step", string(t.step.Step)), attribute.String("upi.event_id", e.ID.String()),
		attribute.String("upi.event_type", e.Type)}
	if t.step.RefundID != uuid.Nil {
		attrs = append(attrs, attribute.String("upi.refund_id", t.step.RefundID.String()))
	}
	sctx, span := w.tracer.Start(observability.RemoteParent(ctx, meta.TraceParent), "workflow "+string(t.step.Step),
		trace.WithAttributes(attrs...))
	t.span = span
	t.step.TraceParent = observability.TraceParent(sctx)
}

// callContext is the context of one call to the step route: under the step's span when the call serves
// one, else under a new root span linked to every step's span. end ends what callContext started.
func (w *Workflow) callContext(ctx context.Context, tasks []*task) (_ context.Context, end func(error)) {
	if w.tracer == nil {
		return ctx, func(error) {}
	}
	if len(tasks) == 1 && tasks[0].span != nil {
		return trace.ContextWithSpan(ctx, tasks[0].span), func(error) {}
	}
	links := make([]trace.Link, 0, len(tasks))
	for _, t := range tasks {
		if t.span != nil {
			links = append(links, trace.Link{SpanContext: t.span.SpanContext()})
		}
	}
	cctx, span := w.tracer.Start(ctx, "workflow steps", trace.WithNewRoot(), trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("upi.steps", len(tasks))))
	return cctx, func(err error) {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// run calls the command service with tasks until each has an outcome: done, parked, or left parked.
func (w *Workflow) run(ctx context.Context, tasks []*task) error {
	delay := w.cfg.Backoff
	transient := 0
	for len(tasks) > 0 {
		steps := make([]contract.Step, len(tasks))
		for i, t := range tasks {
			steps[i] = t.step
		}
		cctx, end := w.callContext(ctx, tasks)
		results, err := w.steps.Run(cctx, steps)
		end(err)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var again []*task
		wait := false
		switch {
		case err != nil && !isTransient(err):
			return fmt.Errorf("workflow: %w", err)
		case err != nil:
			for _, t := range tasks {
				w.metrics.steps.WithLabelValues(string(t.step.Step), "transient_error").Inc()
			}
			again, wait = tasks, true
			transient++
		default:
			roundTransient := false
			for i, t := range tasks {
				next, retry, wasTransient, err := w.settle(ctx, t, results[i])
				if err != nil {
					return err
				}
				if next != nil {
					again = append(again, next)
				}
				wait = wait || retry
				roundTransient = roundTransient || wasTransient
			}
			if roundTransient {
				transient++
			}
		}
		if transient >= w.cfg.TransientAttempts && len(again) > 0 {
			return fmt.Errorf("workflow: the command service kept failing; %d steps left: %w", len(again),
				errors.Join(err, errTransient))
		}
		tasks = again
		if wait && len(tasks) > 0 {
			w.log.WarnContext(ctx, "workflow steps failed; retrying", "steps", len(tasks), "retry_in", delay.String())
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(delay):
			}
			delay = min(2*delay, 2*time.Second)
		}
	}
	return nil
}

// errTransient marks a batch handed back because its steps kept failing transiently.
var errTransient = errors.New("transient step failures")

// settle takes one step's result: it records an outcome, or returns the task to send again (the same
// step, or what replaces it) and whether that needs a pause first (retry) and was transient.
func (w *Workflow) settle(ctx context.Context, t *task, r contract.StepResult) (next *task, retry, transient bool, err error) {
	pctx := observability.WithCorrelationID(ctx, t.step.Key().String())
	if t.span != nil {
		pctx = trace.ContextWithSpan(pctx, t.span) // so that its log lines carry the step's trace
	}
	name := string(t.step.Step)
	switch p := r.Problem; {
	case p == nil:
		w.record(pctx, t, r)
		if t.resolves != nil {
			how := "compensated: "
			if t.resolves.step == t.step.Step {
				how = "retried: "
			}
			return nil, false, false, w.resolve(ctx, *t.resolves, how+r.EventType)
		}
		return nil, false, false, nil
	case transientStatus(p.Status):
		w.metrics.steps.WithLabelValues(name, "transient_error").Inc()
		return t, true, true, nil
	case payeeRefused(t.step, p):
		// The payee's account itself refuses the credit (gone, or at its limit): no retry can help, so
		// the debit is reversed now and the payment fails with PAYEE_UNAVAILABLE.
		w.metrics.steps.WithLabelValues(name, "refused").Inc()
		w.log.WarnContext(pctx, "payee refused the credit; reversing the debit", "problem", p.Code, "detail", p.Detail)
		reverse := contract.StepReverse
		if t.step.Step.Refund() {
			reverse = contract.StepRefundReverse
		}
		return &task{step: contract.Step{PaymentID: t.step.PaymentID, RefundID: t.step.RefundID, Step: reverse,
			Code: events.CodePayeeUnavailable, Reason: "the payee could not be credited",
			CausationID: t.step.CausationID, TraceParent: t.step.TraceParent}, resolves: t.resolves, span: t.span}, false, false, nil
	}
	w.metrics.steps.WithLabelValues(name, "lasting_error").Inc()
	cause := fmt.Errorf("%s: %d %s: %s", name, r.Problem.Status, r.Problem.Code, r.Problem.Detail)
	if t.resolves != nil {
		// A compensation or retry of a parked step: it stays parked and is retried later.
		w.log.ErrorContext(pctx, "retry of a parked step failed; left parked", "err", cause)
		return nil, false, false, nil
	}
	if t.lasting++; t.lasting < w.cfg.LastingAttempts {
		w.log.WarnContext(pctx, "workflow step failed", "err", cause, "attempt", t.lasting)
		return t, true, false, nil
	}
	if t.span != nil {
		t.span.SetStatus(codes.Error, "parked: "+cause.Error())
	}
	comp, err := w.park(pctx, t.step, cause)
	if comp != nil {
		comp.span = t.span
	}
	return comp, false, false, err
}

func (w *Workflow) record(ctx context.Context, t *task, r contract.StepResult) {
	result := "ok"
	if r.Replayed {
		result = "replayed"
	}
	w.metrics.steps.WithLabelValues(string(t.step.Step), result).Inc()
	if t.span != nil {
		t.span.SetAttributes(attribute.String("upi.outcome", r.EventType), attribute.Bool("upi.replayed", r.Replayed))
	}
	if r.Replayed {
		return
	}
	switch r.EventType {
	case events.PaymentCompleted:
		w.metrics.outcomes.WithLabelValues("COMPLETED", "").Inc()
	case events.PaymentFailed:
		w.metrics.outcomes.WithLabelValues("FAILED", t.step.Code).Inc()
	case events.RefundCompleted:
		w.metrics.outcomes.WithLabelValues("REFUND_COMPLETED", "").Inc()
	case events.RefundFailed:
		w.metrics.outcomes.WithLabelValues("REFUND_FAILED", t.step.Code).Inc()
	}
	w.log.DebugContext(ctx, "workflow step", "step", t.step.Step, "outcome", r.EventType)
}

// park records a step that keeps failing for a lasting reason, so that it stops holding back the payments
// behind it, and returns its compensation to run, where the payment can still end without money moved.
func (w *Workflow) park(ctx context.Context, st contract.Step, cause error) (*task, error) {
	w.metrics.parked.WithLabelValues(string(st.Step)).Inc()
	retry, compensable := compensation(st)
	if !compensable {
		retry = st
	}
	body, err := json.Marshal(retry)
	if err != nil {
		return nil, fmt.Errorf("park %s of %s: %w", st.Step, st.PaymentID, err)
	}
	w.log.ErrorContext(ctx, "workflow step parked", "step", st.Step, "reason", cause.Error(),
		"then", retry.Step, "payment_id", st.PaymentID.String(), "saga", st.Key().String())
	causeID, _ := uuid.Parse(st.CausationID)
	if _, err := w.pool.Exec(ctx, `
		insert into workflow_parked (payment_id, step, cause_event_id, reason, retry_step, retry_body)
		values ($1, $2, $3, $4, $5, $6)
		on conflict (payment_id, step) do update
		set reason = excluded.reason, attempts = workflow_parked.attempts + 1, status = 'parked', updated_at = now()`,
		st.Key(), st.Step, causeID, cause.Error(), retry.Step, body); err != nil {
		return nil, fmt.Errorf("park %s of %s: %w", st.Step, st.Key(), err)
	}
	if !compensable {
		return nil, nil
	}
	return &task{step: retry, resolves: &parked{paymentID: st.Key(), step: st.Step}}, nil
}

func (w *Workflow) resolve(ctx context.Context, p parked, how string) error {
	_, err := w.pool.Exec(ctx, `update workflow_parked set status = 'resolved', resolution = $3, updated_at = now()
		where payment_id = $1 and step = $2`, p.paymentID, p.step, how)
	if err != nil {
		return fmt.Errorf("resolve parked %s of %s: %w", p.step, p.paymentID, err)
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
	var tasks []*task
	for rows.Next() {
		var p parked
		var retryStep contract.StepName
		var body []byte
		if err := rows.Scan(&p.paymentID, &p.step, &retryStep, &body); err != nil {
			rows.Close()
			return err
		}
		// retry_body is the step to send; rows parked by older versions hold only its code, reason and
		// causation, which decode the same way.
		var st contract.Step
		if err := json.Unmarshal(body, &st); err != nil {
			w.log.ErrorContext(ctx, "parked step unreadable; left parked", "payment_id", p.paymentID, "err", err)
			continue
		}
		// payment_id holds the saga's key: a refund's id for a refund step (whose body names its payment).
		st.Step = retryStep
		if st.Step.Refund() {
			st.RefundID = p.paymentID
		} else {
			st.PaymentID = p.paymentID
		}
		tasks = append(tasks, &task{step: st, resolves: &p})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(tasks) > 0 {
		if err := w.run(ctx, tasks); err != nil {
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
