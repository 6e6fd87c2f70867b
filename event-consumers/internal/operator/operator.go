// Package operator is the operators' command line of event-consumers (bin/event-consumers SUBCOMMAND):
// parked workflow steps (list, retry, force-fail), a payment's whole workflow state, quarantined events
// (list, release) and consumers' checkpoints (show, reset). Each command prints what it found or did and
// exits; none needs SQL (docs/failure-handling.md, "Operating the consumers").
package operator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/event-consumers/internal/adapters/postgres"
	"upi/event-consumers/internal/app/workflow"
	"upi/event-consumers/internal/runner"
	"upi/shared/contract"
	"upi/shared/platform/eventstore"
	"upi/shared/platform/observability"
)

// Usage is the command line's help.
const Usage = `usage: event-consumers COMMAND
  rebuild all|PROJECTION                  rebuild projections from the log (blue/green)
  verify [-stuck-after DURATION]           check the ledger from the log (exit 0 when it holds)
  parked list [--all]                      parked workflow steps (--all: resolved and failed too)
  parked retry PAYMENT_ID STEP             retry a parked step (or its compensation) now
  parked fail PAYMENT_ID STEP REASON...    give a parked step up: never retried again
  payment PAYMENT_ID                       a payment's events, the step each calls for, what is done,
                                           parked or quarantined
  quarantine list [CONSUMER] [--all]       events held in quarantine, with their errors
  quarantine release CONSUMER STREAM       apply what CONSUMER holds of STREAM (after the fix)
  checkpoint list                          every consumer's checkpoint
  checkpoint reset CONSUMER start|TOKEN    move a consumer's checkpoint; a projection's only to start,
                                           which empties its tables (rebuild keeps serving instead)
`

// ErrUsage is a command line that names no known command or lacks its arguments.
var ErrUsage = errors.New("bad command line")

// Operator runs the commands.
type Operator struct {
	Pool   *pgxpool.Pool
	Parked *postgres.ParkedSteps
	// Workflow retries parked steps through the command service.
	Workflow *workflow.Workflow
	// Projections are the projections (their tables); Consumers names every consumer.
	Projections []runner.Projection
	Consumers   []string
	Out         io.Writer
	// ReleaseWait is how long release waits for the consumer to answer (default 30s).
	ReleaseWait time.Duration
}

// Run runs the command args names.
func (o *Operator) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return ErrUsage
	}
	cmd, rest := args[0]+" "+first(args[1:]), tail(args[1:])
	switch {
	case args[0] == "help":
		_, err := fmt.Fprint(o.Out, Usage)
		return err
	case cmd == "parked list":
		return o.parkedList(ctx, flag(rest, "--all"))
	case cmd == "parked retry" && len(rest) == 2:
		return o.parkedRetry(ctx, rest[0], rest[1])
	case cmd == "parked fail" && len(rest) >= 3:
		return o.parkedFail(ctx, rest[0], rest[1], strings.Join(rest[2:], " "))
	case args[0] == "payment" && len(args) == 2:
		return o.payment(ctx, args[1])
	case cmd == "quarantine list":
		consumer := ""
		if len(rest) > 0 && rest[0] != "--all" {
			consumer = rest[0]
		}
		return o.quarantineList(ctx, consumer, flag(rest, "--all"))
	case cmd == "quarantine release" && len(rest) == 2:
		return o.quarantineRelease(ctx, rest[0], rest[1])
	case cmd == "checkpoint list":
		return o.checkpointList(ctx)
	case cmd == "checkpoint reset" && len(rest) == 2:
		return o.checkpointReset(ctx, rest[0], rest[1])
	}
	return ErrUsage
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func tail(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s[1:]
}

func flag(args []string, name string) bool { return slices.Contains(args, name) }

func (o *Operator) table() *tabwriter.Writer { return tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0) }

func ago(t time.Time) string { return time.Since(t).Round(time.Second).String() }

// parkedStep parses a parked step's saga key and step name.
func parkedStep(id, step string) (workflow.ParkedStep, error) {
	key, err := uuid.Parse(id)
	if err != nil {
		return workflow.ParkedStep{}, fmt.Errorf("%q is not a payment (or refund) id: %w", id, ErrUsage)
	}
	return workflow.ParkedStep{Key: key, Step: contract.StepName(step)}, nil
}

func (o *Operator) parkedList(ctx context.Context, all bool) error {
	rows, err := o.Parked.List(ctx, uuid.Nil, all)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		fmt.Fprintln(o.Out, "no parked steps")
		return nil
	}
	o.printParked(rows)
	return nil
}

func (o *Operator) printParked(rows []postgres.ParkedRow) {
	tw := o.table()
	fmt.Fprintln(tw, "PAYMENT/REFUND\tSTEP\tRETRIES AS\tSTATUS\tATTEMPTS\tPARKED\tNEXT ATTEMPT\tREASON / RESOLUTION")
	for _, r := range rows {
		next, why := "-", r.Reason
		if r.Status == "parked" {
			next = "in " + time.Until(r.NextAttempt).Round(time.Second).String()
			if !r.NextAttempt.After(time.Now()) {
				next = "due"
			}
		} else if r.Resolution != "" {
			why = r.Resolution
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s ago\t%s\t%s\n", r.Key, r.Step, r.RetryStep, r.Status, r.Attempts,
			ago(r.ParkedAt), next, why)
	}
	tw.Flush()
}

// parkedRetry makes the step due and runs a round of retries at once, then says how the step stands.
func (o *Operator) parkedRetry(ctx context.Context, id, step string) error {
	p, err := parkedStep(id, step)
	if err != nil {
		return err
	}
	ok, err := o.Parked.Due(ctx, p)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no parked step %s of %s (parked list shows them)", p.Step, p.Key)
	}
	if err := o.Workflow.RetryDue(ctx); err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	rows, err := o.Parked.List(ctx, p.Key, true)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if r.Step == p.Step {
			o.printParked([]postgres.ParkedRow{r})
		}
	}
	return nil
}

func (o *Operator) parkedFail(ctx context.Context, id, step, why string) error {
	p, err := parkedStep(id, step)
	if err != nil {
		return err
	}
	ok, err := o.Parked.Fail(ctx, p, why)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no parked step %s of %s (parked list shows them)", p.Step, p.Key)
	}
	fmt.Fprintf(o.Out, "%s of %s force-failed: it will not be retried again\n", p.Step, p.Key)
	return nil
}

// payment prints a payment's events in log order (its own stream and the account events its workflow
// appended), the step each calls for, whether the workflow has handled it, its trace id, and what is
// parked or held.
func (o *Operator) payment(ctx context.Context, id string) error {
	pid, err := uuid.Parse(id)
	if err != nil {
		return fmt.Errorf("%q is not a payment id: %w", id, ErrUsage)
	}
	rows, err := o.Pool.Query(ctx, `select global_position, tx_id::text::bigint, event_id, aggregate_id, aggregate_type,
			event_type, version, payload, metadata, created_at
		from events where aggregate_id = $1 or metadata->>'correlation_id' = $1 or payload->>'payment_id' = $1
		order by tx_id, global_position`, pid.String())
	if err != nil {
		return fmt.Errorf("read the payment's events: %w", err)
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (eventstore.Event, error) {
		var e eventstore.Event
		var eid [16]byte
		err := row.Scan(&e.Position.GlobalPosition, &e.Position.TxID, &eid, &e.AggregateID, &e.AggregateType, &e.Type,
			&e.Version, &e.Payload, &e.Metadata, &e.CreatedAt)
		e.ID = eid
		return e, err
	})
	if err != nil {
		return fmt.Errorf("read the payment's events: %w", err)
	}
	if len(evs) == 0 {
		return fmt.Errorf("no events of payment %s in the log", pid)
	}
	// The workflow's checkpoint for this payment: that of the partition that handles it, when the
	// workflow runs in partitions.
	cp, err := runner.KeyCheckpoint(ctx, o.Pool, workflow.Name, pid.String())
	if err != nil {
		return err
	}
	held, err := runner.Quarantined(ctx, o.Pool, "", false)
	if err != nil {
		return err
	}
	heldIDs := map[uuid.UUID]string{}
	for _, h := range held {
		heldIDs[h.EventID] = h.Consumer
	}

	fmt.Fprintf(o.Out, "payment %s: %s\n\n", pid, paymentStatus(evs, pid.String()))
	tw := o.table()
	fmt.Fprintln(tw, "POSITION\tAT\tSTREAM\tEVENT\tCALLS FOR\tWORKFLOW\tTRACE")
	for _, e := range evs {
		calls := "-"
		st, err := workflow.Next(e)
		switch {
		case err != nil:
			calls = "unreadable: " + err.Error()
		case st != nil:
			calls = string(st.Step)
		}
		state := "handled"
		if cp.Less(e.Position) {
			state = "not yet read"
		}
		if consumer, ok := heldIDs[e.ID]; ok {
			state = "quarantined by " + consumer
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s v%d\t%s\t%s\t%s\n", e.Position.Token(), e.CreatedAt.UTC().Format(time.RFC3339Nano),
			e.AggregateID, e.Type, e.Version, calls, state, traceID(e.Metadata))
	}
	tw.Flush()

	parked, err := o.Parked.List(ctx, pid, true)
	if err != nil {
		return err
	}
	fmt.Fprintln(o.Out)
	if len(parked) == 0 {
		fmt.Fprintln(o.Out, "parked steps: none")
	} else {
		fmt.Fprintln(o.Out, "parked steps:")
		o.printParked(parked)
	}
	return nil
}

// paymentStatus is what the payment's own stream says of it.
func paymentStatus(evs []eventstore.Event, id string) string {
	status := "unknown (no PaymentInitiated)"
	for _, e := range evs {
		if e.AggregateID != id {
			continue
		}
		switch e.Type {
		case "PaymentInitiated":
			status = "in progress"
		case "PaymentCompleted":
			status = "COMPLETED"
		case "PaymentFailed":
			status = "FAILED"
		}
	}
	return status
}

func (o *Operator) quarantineList(ctx context.Context, consumer string, all bool) error {
	evs, err := runner.Quarantined(ctx, o.Pool, consumer, all)
	if err != nil {
		return err
	}
	if len(evs) == 0 {
		fmt.Fprintln(o.Out, "no events in quarantine")
		return nil
	}
	tw := o.table()
	fmt.Fprintln(tw, "CONSUMER\tSTREAM\tEVENT\tID\tPOSITION\tSTATUS\tSINCE\tERROR")
	for _, e := range evs {
		why := e.Error
		if why == "" {
			why = "(waits behind the stream's failed event)"
		}
		status := e.Status
		if e.ReleaseAsked {
			status += ", release asked"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s ago\t%s\n", e.Consumer, e.Stream, e.EventType, e.EventID,
			e.Position.Token(), status, ago(e.QuarantinedAt), why)
	}
	tw.Flush()
	return nil
}

// quarantineRelease asks the consumer to apply what it holds of stream and waits for its answer.
func (o *Operator) quarantineRelease(ctx context.Context, consumer, stream string) error {
	if !slices.Contains(o.Consumers, consumer) {
		return fmt.Errorf("no consumer %q (%s): %w", consumer, strings.Join(o.Consumers, ", "), ErrUsage)
	}
	n, err := runner.RequestRelease(ctx, o.Pool, consumer, stream)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s holds nothing of %s", consumer, stream)
	}
	fmt.Fprintf(o.Out, "release of %d events of %s asked; waiting for %s to apply them\n", n, stream, consumer)
	wait := o.ReleaseWait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		evs, err := runner.Quarantined(ctx, o.Pool, consumer, false)
		if err != nil {
			return err
		}
		var left []runner.QuarantinedEvent
		asked := false
		for _, e := range evs {
			if e.Stream == stream {
				left = append(left, e)
				asked = asked || e.ReleaseAsked
			}
		}
		switch {
		case len(left) == 0:
			fmt.Fprintf(o.Out, "released: %s applied every held event of %s\n", consumer, stream)
			return nil
		case !asked:
			return fmt.Errorf("not released: %d events of %s still held; %s %s fails with: %s",
				len(left), stream, left[0].EventType, left[0].EventID, left[0].Error)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s has not answered within %s (is it running? `quarantine list` shows the request)", consumer, wait)
}

// checkpointList prints every consumer's checkpoint, reading only (a consumer that never ran has none).
func (o *Operator) checkpointList(ctx context.Context) error {
	tw := o.table()
	fmt.Fprintln(tw, "CONSUMER\tCHECKPOINT\tGLOBAL POSITION\tUPDATED")
	for _, name := range o.Consumers {
		var cp eventstore.Position
		var updated time.Time
		err := o.Pool.QueryRow(ctx, `select tx_id::text::bigint, global_position, updated_at from projection_checkpoints
			where name = $1`, name).Scan(&cp.TxID, &cp.GlobalPosition, &updated)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			fmt.Fprintf(tw, "%s\t(none: never ran)\t-\t-\n", name)
		case err != nil:
			return fmt.Errorf("read checkpoint %s: %w", name, err)
		default:
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s ago\n", name, cp.Token(), cp.GlobalPosition, ago(updated))
		}
		// A partitioned consumer's partitions, under it: the consumer's own row is their minimum.
		rows, err := o.Pool.Query(ctx, `select name, tx_id::text::bigint, global_position, updated_at
			from projection_checkpoints where left(name, length($1) + 1) = $1 || '#' order by name`, name)
		if err != nil {
			return fmt.Errorf("read the partitions of %s: %w", name, err)
		}
		var part string
		if _, err := pgx.ForEachRow(rows, []any{&part, &cp.TxID, &cp.GlobalPosition, &updated}, func() error {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s ago\n", part, cp.Token(), cp.GlobalPosition, ago(updated))
			return nil
		}); err != nil {
			return fmt.Errorf("read the partitions of %s: %w", name, err)
		}
	}
	tw.Flush()
	return nil
}

// checkpointReset moves a consumer's checkpoint: a processor (the workflow, the feed) to any position
// (what lies after it is handled again: each step is idempotent, each feed message carries its id), a
// projection only to the start, emptying its tables, which the live worker then fills again.
func (o *Operator) checkpointReset(ctx context.Context, name, to string) error {
	if !slices.Contains(o.Consumers, name) {
		return fmt.Errorf("no consumer %q (%s): %w", name, strings.Join(o.Consumers, ", "), ErrUsage)
	}
	pos := eventstore.Start
	if to != "start" {
		p, err := eventstore.ParseToken(to)
		if err != nil {
			return fmt.Errorf("%q is neither start nor a position token: %w", to, ErrUsage)
		}
		pos = p
	}
	var tables []string
	for _, p := range o.Projections {
		if p.Name() == name {
			if pos != eventstore.Start {
				return fmt.Errorf("%s is a projection: its tables reflect its checkpoint, so it resets only to start "+
					"(or rebuild it while it serves): %w", name, ErrUsage)
			}
			tables = p.Tables()
		}
	}
	was, dropped, err := runner.ResetCheckpoint(ctx, o.Pool, name, pos, tables)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "%s: checkpoint %s -> %s", name, was.Token(), pos.Token())
	if len(tables) > 0 {
		fmt.Fprintf(o.Out, "; emptied %s", strings.Join(tables, ", "))
	}
	if dropped > 0 {
		fmt.Fprintf(o.Out, "; %d quarantined events dropped (those after the new checkpoint are read again)", dropped)
	}
	fmt.Fprintln(o.Out)
	return nil
}

// traceID is the trace id of the traceparent an event's metadata keeps ("-" for none: tracing was off),
// to paste into the trace viewer; a trailing "(not sampled)" when its flags say so.
func traceID(metadata []byte) string {
	parts := strings.Split(observability.TraceParentOf(metadata), "-")
	if len(parts) != 4 {
		return "-"
	}
	if parts[3] == "00" {
		return parts[1] + " (not sampled)"
	}
	return parts[1]
}
