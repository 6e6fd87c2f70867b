package workflow

import (
	"context"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"upi/shared/contract"
	"upi/shared/platform/eventstore"
	"upi/shared/platform/observability"
)

// SelfTraced tells the runner that the workflow traces its steps itself (runner.SelfTraced).
func (w *Workflow) SelfTraced() {}

// startSpan starts t's span as a child of the span that appended e (parent: its traceparent), and names it
// in t's step. No (readable) traceparent only costs the step its parent: its span starts a trace.
func (w *Workflow) startSpan(ctx context.Context, t *task, e eventstore.Event, parent string) {
	attrs := []attribute.KeyValue{attribute.String("upi.payment_id", t.step.PaymentID.String()),
		attribute.String("upi.step", string(t.step.Step)), attribute.String("upi.event_id", e.ID.String()),
		attribute.String("upi.event_type", e.Type)}
	if t.step.RefundID != uuid.Nil {
		attrs = append(attrs, attribute.String("upi.refund_id", t.step.RefundID.String()))
	}
	sctx, span := w.tracer.Start(observability.RemoteParent(ctx, parent), "workflow "+string(t.step.Step),
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

// traceOutcome records on t's span, when it has one, the event its step ended with.
func traceOutcome(t *task, r contract.StepResult) {
	if t.span != nil {
		t.span.SetAttributes(attribute.String("upi.outcome", r.EventType), attribute.Bool("upi.replayed", r.Replayed))
	}
}
