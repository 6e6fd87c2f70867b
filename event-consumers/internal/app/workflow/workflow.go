// Package workflow is the payment process manager. It follows the event log and moves each payment on by
// one step per event; the steps a batch of the log calls for go to the command service in one call
// (contract.PathSteps), which applies them together. A step's answer carries its event, and the step that
// event calls for is taken at once, in the next call, rather than when the event comes round in the log
// (chain.go):
//
//	PaymentInitiated -> debit payer   -> AccountDebited  -> credit payee -> AccountCredited -> complete
//	                                  -> DebitRejected   -> fail (INSUFFICIENT_FUNDS)
//	                                     (credit impossible) -> reverse debit -> DebitReversed -> fail
//
// Delivery is at least once: a batch is handled, then checkpointed, and a crash in between handles it
// again. That is safe because every step's event id is derived from its payment and step, so a repeated
// step finds its earlier outcome in the log instead of moving money twice (docs/failure-handling.md).
//
// The package holds the decisions (Next: which step an event calls for; compensation: what replaces a
// step that cannot be made) and the policy around them (retries, parking); the command service's client
// and the parked steps' table are its ports (Steps, Parking).
package workflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/platform/eventstore"
	"upi/shared/platform/observability"
)

// Name is the workflow's consumer name and checkpoint.
const Name = "payment-workflow"

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
	// RetryParkedEvery is how often parked steps that are due are retried; a parked step is due at once,
	// then, after each failed retry, after RetryParkedEvery doubled per failure up to RetryParkedMax.
	RetryParkedEvery time.Duration
	// RetryParkedMax caps the time between two retries of one parked step.
	RetryParkedMax time.Duration
}

// DefaultConfig is the configuration of the service.
var DefaultConfig = Config{LastingAttempts: 5, TransientAttempts: 4, Backoff: 25 * time.Millisecond,
	RetryParkedEvery: 30 * time.Second, RetryParkedMax: time.Hour}

// retryParkedLimit is how many parked steps one RetryParked round takes, those due longest first. A step
// whose retry fails is due again only after its back-off, so the next round takes the next ones: steps
// that keep failing cannot hold back newer ones.
const retryParkedLimit = 100

// retryParkedAfter is when a parked step is due again after its n-th failed retry: RetryParkedEvery,
// doubled for each failed retry before, up to RetryParkedMax.
func (c Config) retryParkedAfter(n int) time.Duration {
	d, limit := c.RetryParkedEvery, c.RetryParkedMax
	if limit <= 0 {
		limit = time.Hour
	}
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// Workflow is the process manager: a runner Processor.
type Workflow struct {
	steps   Steps
	parking Parking
	log     *slog.Logger
	cfg     Config
	metrics metrics
	// tracer is set when tracing is on (observability.Tracing when New ran); nil, no step is traced.
	tracer trace.Tracer
	// taken are the events whose steps were taken ahead of the log (chain.go).
	taken taken
}

// New returns the workflow, sending its steps through steps and parking those that keep failing in
// parking.
func New(steps Steps, parking Parking, log *slog.Logger, reg prometheus.Registerer, cfg Config) *Workflow {
	w := &Workflow{steps: steps, parking: parking, log: log, cfg: cfg, metrics: newMetrics(reg)}
	if observability.Tracing() {
		w.tracer = observability.Tracer("event-consumers/workflow")
	}
	return w
}

// Name is the consumer's name.
func (w *Workflow) Name() string { return Name }

// PartitionKey implements runner.Partitioned: the payment an event moves on (a refund's event, its
// payment's), so that one partition takes a payment's steps and its refunds' in log order. An event that
// calls for no step (or cannot be read: Handle reports it) goes by its aggregate id.
func (w *Workflow) PartitionKey(e eventstore.Event) string {
	st, err := Next(e)
	if err != nil || st == nil {
		return e.AggregateID
	}
	return st.PaymentID.String()
}

// task is a step on its way to an outcome within one batch.
type task struct {
	step    contract.Step
	lasting int // lasting failures so far
	// resolves names the parked step that this one compensates or retries, when it does, and attempts
	// how many times that step has failed so far.
	resolves *ParkedStep
	attempts int
	// span is the step's span when traced (see Handle), also carried by what replaces the step.
	span trace.Span
	// cause is the event that called for the step when the step is taken ahead of the log (follow): once
	// the step has an outcome, the event is remembered, so that its step is skipped when it comes round.
	cause uuid.UUID
}

// batchRun is what one run of tasks keeps: the events whose steps are on their way (by CausationID), so
// that none is taken twice, and the spans of the steps taken ahead of the log, ended with the run.
type batchRun struct {
	queued map[string]bool
	spans  []trace.Span
}

// Handle moves on every payment that the batch's events concern: the steps they call for go to the
// command service together, in one call, and are applied there in one transaction; then the steps their
// answers call for, in the next call, and so on until the payments end or wait (chain.go). An event whose
// step was already taken that way is skipped. Steps that fail are
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
			// An event the workflow cannot read is a bug or a corrupt log: never skip it silently (the
			// runner quarantines it and holds back its stream: Lasting).
			return fmt.Errorf("workflow: %w: %w", errUnhandled, err)
		}
		if st == nil || w.taken.take(e.ID) {
			continue
		}
		t := &task{step: *st}
		if w.tracer != nil {
			w.startSpan(ctx, t, e, observability.TraceParentOf(e.Metadata))
			defer t.span.End()
		}
		tasks = append(tasks, t)
	}
	return w.run(ctx, tasks)
}

// run calls the command service with tasks, and then with the steps their answers call for, until each
// has an outcome: done, parked, or left parked.
func (w *Workflow) run(ctx context.Context, tasks []*task) error {
	b := &batchRun{queued: make(map[string]bool, len(tasks))}
	for _, t := range tasks {
		b.queued[t.step.CausationID] = true
	}
	defer func() {
		for _, s := range b.spans {
			s.End()
		}
	}()
	delay := w.cfg.Backoff
	transientRounds := 0
	for len(tasks) > 0 {
		again, wait, transient, err := w.round(ctx, tasks, b)
		if err != nil {
			return err
		}
		if transient.err != nil || transient.any {
			transientRounds++
		}
		if transientRounds >= w.cfg.TransientAttempts && len(again) > 0 {
			return fmt.Errorf("workflow: the command service kept failing; %d steps left: %w", len(again),
				errors.Join(transient.err, errTransient))
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

// transience is what was transient in one round: the call as a whole (err), or some steps' answers (any).
type transience struct {
	err error
	any bool
}

// round sends tasks in one call and settles each answer. It returns the tasks to send again, whether
// they need a pause first, and what of the round was transient; an error ends the batch.
func (w *Workflow) round(ctx context.Context, tasks []*task, b *batchRun) (again []*task, wait bool, transient transience, err error) {
	steps := make([]contract.Step, len(tasks))
	for i, t := range tasks {
		steps[i] = t.step
	}
	cctx, end := w.callContext(ctx, tasks)
	results, err := w.steps.RunSteps(cctx, steps)
	end(err)
	if ctx.Err() != nil {
		return nil, false, transience{}, ctx.Err()
	}
	switch {
	case err != nil && errors.Is(err, ErrRefused):
		return nil, false, transience{}, fmt.Errorf("workflow: %w: %w", errUnhandled, err)
	case err != nil && !isTransient(err):
		return nil, false, transience{}, fmt.Errorf("workflow: %w", err)
	case err != nil:
		for _, t := range tasks {
			w.metrics.steps.WithLabelValues(string(t.step.Step), "transient_error").Inc()
		}
		return tasks, true, transience{err: err}, nil
	}
	for i, t := range tasks {
		next, retry, wasTransient, err := w.settle(ctx, t, results[i], b)
		if err != nil {
			return nil, false, transience{}, err
		}
		if next != nil {
			again = append(again, next)
		}
		wait = wait || retry
		transient.any = transient.any || wasTransient
	}
	return again, wait, transient, nil
}

// errTransient marks a batch handed back because its steps kept failing transiently.
var errTransient = errors.New("transient step failures")

// errUnhandled marks a batch handed back because of what its events are: one the workflow cannot read,
// or steps the command service refuses as a whole as malformed (ErrRefused: a contract broken by some
// event). Any other failure of a call (a 500, an answer that does not decode) is retried as it is: it
// may be the moment's, and a wrong quarantine would hold payments back for nothing.
var errUnhandled = errors.New("events the workflow cannot handle")

// Lasting implements runner.Lasting: errors about the events themselves, which no retry can cure, have
// the runner set those events aside (quarantine) so that they hold back their own streams only.
func (w *Workflow) Lasting(err error) bool { return errors.Is(err, errUnhandled) }

// isTransient reports whether a failed call is worth retrying without counting it against its steps.
func isTransient(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// settle takes one step's result: it records an outcome and returns the step the outcome's event calls
// for, or returns the task to send again (the same step, or what replaces it) and whether that needs a
// pause first (retry) and was transient.
func (w *Workflow) settle(ctx context.Context, t *task, r contract.StepResult, b *batchRun) (next *task, retry, transient bool, err error) {
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
			if t.resolves.Step == t.step.Step {
				how = "retried: "
			}
			if err := w.parking.Resolve(ctx, *t.resolves, how+r.EventType); err != nil {
				return nil, false, false, err
			}
		}
		w.settled(t)
		next := w.follow(ctx, t, r, b.queued)
		if next != nil && next.span != nil {
			b.spans = append(b.spans, next.span)
		}
		return next, false, false, nil
	case TransientStatus(p.Status):
		w.metrics.steps.WithLabelValues(name, "transient_error").Inc()
		return t, true, true, nil
	case payeeRefused(t.step, p):
		// The payee's account itself refuses the credit (gone, or at its limit): no retry can help, so
		// the debit is reversed now and the payment fails with PAYEE_UNAVAILABLE.
		w.metrics.steps.WithLabelValues(name, "refused").Inc()
		w.log.WarnContext(pctx, "payee refused the credit; reversing the debit", "problem", p.Code, "detail", p.Detail)
		return &task{step: reversal(t.step), resolves: t.resolves, attempts: t.attempts, span: t.span, cause: t.cause}, false, false, nil
	}
	w.metrics.steps.WithLabelValues(name, "lasting_error").Inc()
	cause := fmt.Errorf("%s: %d %s: %s", name, r.Problem.Status, r.Problem.Code, r.Problem.Detail)
	if t.resolves != nil {
		// A compensation or retry of a parked step: it stays parked and is retried after its back-off.
		after := w.cfg.retryParkedAfter(t.attempts) // its parking was one attempt, its retries the others
		w.log.ErrorContext(pctx, "retry of a parked step failed; left parked", "err", cause,
			"attempts", t.attempts+1, "retry_in", after.String())
		return nil, false, false, w.parking.Postpone(ctx, *t.resolves, cause.Error(), after)
	}
	if t.lasting++; t.lasting < w.cfg.LastingAttempts {
		w.log.WarnContext(pctx, "workflow step failed", "err", cause, "attempt", t.lasting)
		return t, true, false, nil
	}
	if t.span != nil {
		t.span.SetStatus(codes.Error, "parked: "+cause.Error())
	}
	comp, err := w.park(pctx, t.step, cause)
	if err != nil {
		return nil, false, false, err
	}
	w.settled(t)
	if comp != nil {
		comp.span = t.span
	}
	return comp, false, false, nil
}

// settled notes that t's step has an outcome (done, or parked): a step taken ahead of the log is then
// skipped when its event comes round.
func (w *Workflow) settled(t *task) {
	if t.cause != uuid.Nil {
		w.taken.add(t.cause)
	}
}

// record counts a step's outcome, and the payment's end when the step ended it.
func (w *Workflow) record(ctx context.Context, t *task, r contract.StepResult) {
	result := "ok"
	if r.Replayed {
		result = "replayed"
	}
	w.metrics.steps.WithLabelValues(string(t.step.Step), result).Inc()
	traceOutcome(t, r)
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
	w.log.ErrorContext(ctx, "workflow step parked", "step", st.Step, "reason", cause.Error(),
		"then", retry.Step, "payment_id", st.PaymentID.String(), "saga", st.Key().String())
	if err := w.parking.Park(ctx, st, retry, cause.Error()); err != nil {
		return nil, err
	}
	if !compensable {
		return nil, nil
	}
	return &task{step: retry, resolves: &ParkedStep{Key: st.Key(), Step: st.Step}, attempts: 1}, nil
}

// RetryParked retries the parked steps that are due (or their compensations) once, and keeps the
// open-parked gauge current. A failure is logged: the next round tries again.
func (w *Workflow) RetryParked(ctx context.Context) {
	if err := w.retryParked(ctx); err != nil && ctx.Err() == nil {
		w.log.WarnContext(ctx, "retry of parked steps failed", "err", err)
	}
}

// RetryDue is one round of RetryParked, with its error: an operator's retry (bin/event-consumers parked
// retry) makes a step due and runs it.
func (w *Workflow) RetryDue(ctx context.Context) error { return w.retryParked(ctx) }

func (w *Workflow) retryParked(ctx context.Context) error {
	parked, err := w.parking.Parked(ctx, retryParkedLimit)
	if err != nil {
		return err
	}
	tasks := make([]*task, 0, len(parked))
	for _, p := range parked {
		tasks = append(tasks, &task{step: p.Retry, resolves: &p.ParkedStep, attempts: p.Attempts})
	}
	if len(tasks) > 0 {
		if err := w.run(ctx, tasks); err != nil {
			return err
		}
	}
	open, err := w.parking.Open(ctx)
	if err != nil {
		return err
	}
	w.metrics.open.Set(float64(open))
	return nil
}
