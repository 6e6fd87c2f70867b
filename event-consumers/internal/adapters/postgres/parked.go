package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/event-consumers/internal/app/workflow"
	"upi/shared/contract"
)

// ParkedSteps is the workflow's table of parked steps (workflow_parked); it implements workflow.Parking.
// Its payment_id column holds the step's saga key (contract.Step.Key: the refund's id for a refund step).
type ParkedSteps struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

// NewParkedSteps returns the parked steps of the database behind pool.
func NewParkedSteps(pool *pgxpool.Pool, log *slog.Logger) *ParkedSteps {
	return &ParkedSteps{pool: pool, log: log}
}

// Park implements workflow.Parking.
func (s *ParkedSteps) Park(ctx context.Context, st, retry contract.Step, reason string) error {
	body, err := json.Marshal(retry)
	if err != nil {
		return fmt.Errorf("park %s of %s: %w", st.Step, st.PaymentID, err)
	}
	causeID, _ := uuid.Parse(st.CausationID)
	if _, err := s.pool.Exec(ctx, `
		insert into workflow_parked (payment_id, step, cause_event_id, reason, retry_step, retry_body)
		values ($1, $2, $3, $4, $5, $6)
		on conflict (payment_id, step) do update
		set reason = excluded.reason, attempts = workflow_parked.attempts + 1, status = 'parked', updated_at = now(),
			next_attempt_at = now()`,
		st.Key(), st.Step, causeID, reason, retry.Step, body); err != nil {
		return fmt.Errorf("park %s of %s: %w", st.Step, st.Key(), err)
	}
	return nil
}

// Resolve implements workflow.Parking.
func (s *ParkedSteps) Resolve(ctx context.Context, p workflow.ParkedStep, resolution string) error {
	_, err := s.pool.Exec(ctx, `update workflow_parked set status = 'resolved', resolution = $3, updated_at = now()
		where payment_id = $1 and step = $2`, p.Key, p.Step, resolution)
	if err != nil {
		return fmt.Errorf("resolve parked %s of %s: %w", p.Step, p.Key, err)
	}
	return nil
}

// Postpone implements workflow.Parking.
func (s *ParkedSteps) Postpone(ctx context.Context, p workflow.ParkedStep, reason string, after time.Duration) error {
	_, err := s.pool.Exec(ctx, `update workflow_parked
		set reason = $3, attempts = attempts + 1, next_attempt_at = now() + $4::bigint * interval '1 millisecond',
			updated_at = now()
		where payment_id = $1 and step = $2 and status = 'parked'`, p.Key, p.Step, reason, after.Milliseconds())
	if err != nil {
		return fmt.Errorf("postpone parked %s of %s: %w", p.Step, p.Key, err)
	}
	return nil
}

// Parked implements workflow.Parking: the steps due soonest first, each due at most once per round. A row
// whose retry step cannot be read is logged and postponed like a failed retry, so it cannot starve the
// others.
func (s *ParkedSteps) Parked(ctx context.Context, limit int) ([]workflow.ParkedRetry, error) {
	rows, err := s.pool.Query(ctx, `select payment_id, step, attempts, retry_step, retry_body from workflow_parked
		where status = 'parked' and next_attempt_at <= now() order by next_attempt_at, parked_at limit $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read parked steps: %w", err)
	}
	defer rows.Close()
	var out []workflow.ParkedRetry
	var unreadable []workflow.ParkedStep
	for rows.Next() {
		var p workflow.ParkedRetry
		var retryStep contract.StepName
		var body []byte
		if err := rows.Scan(&p.Key, &p.Step, &p.Attempts, &retryStep, &body); err != nil {
			return nil, fmt.Errorf("read parked steps: %w", err)
		}
		// retry_body is the step to send; rows parked by older versions hold only its code, reason and
		// causation, which decode the same way.
		if err := json.Unmarshal(body, &p.Retry); err != nil {
			s.log.ErrorContext(ctx, "parked step unreadable; left parked", "payment_id", p.Key, "err", err)
			unreadable = append(unreadable, p.ParkedStep)
			continue
		}
		// payment_id holds the saga's key: a refund's id for a refund step (whose body names its payment).
		p.Retry.Step = retryStep
		if p.Retry.Step.Refund() {
			p.Retry.RefundID = p.Key
		} else {
			p.Retry.PaymentID = p.Key
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read parked steps: %w", err)
	}
	for _, p := range unreadable {
		if err := s.Postpone(ctx, p, "retry step unreadable", time.Hour); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Open implements workflow.Parking.
func (s *ParkedSteps) Open(ctx context.Context) (int, error) {
	var open int
	err := s.pool.QueryRow(ctx, `select count(*) from workflow_parked where status = 'parked'`).Scan(&open)
	return open, err
}

// ParkedRow is a parked step as an operator sees it.
type ParkedRow struct {
	Key         uuid.UUID
	Step        contract.StepName
	RetryStep   contract.StepName
	Status      string
	Reason      string
	Resolution  string
	Attempts    int
	ParkedAt    time.Time
	NextAttempt time.Time
}

// List returns the parked steps, open ones only unless all, of one saga (uuid.Nil for every one), the
// next due first.
func (s *ParkedSteps) List(ctx context.Context, key uuid.UUID, all bool) ([]ParkedRow, error) {
	rows, err := s.pool.Query(ctx, `select payment_id, step, retry_step, status, reason, coalesce(resolution, ''),
			attempts, parked_at, next_attempt_at
		from workflow_parked where ($1 or status = 'parked') and ($2::uuid is null or payment_id = $2)
		order by status = 'parked' desc, next_attempt_at, parked_at`, all, nullKey(key))
	if err != nil {
		return nil, fmt.Errorf("list parked steps: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ParkedRow, error) {
		var r ParkedRow
		var id [16]byte
		err := row.Scan(&id, &r.Step, &r.RetryStep, &r.Status, &r.Reason, &r.Resolution, &r.Attempts, &r.ParkedAt, &r.NextAttempt)
		r.Key = id
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("list parked steps: %w", err)
	}
	return out, nil
}

func nullKey(key uuid.UUID) *string {
	if key == uuid.Nil {
		return nil
	}
	s := key.String()
	return &s
}

// Due makes a parked step due for a retry now; false when no such step is parked.
func (s *ParkedSteps) Due(ctx context.Context, p workflow.ParkedStep) (bool, error) {
	tag, err := s.pool.Exec(ctx, `update workflow_parked set next_attempt_at = now(), updated_at = now()
		where payment_id = $1 and step = $2 and status = 'parked'`, p.Key, p.Step)
	if err != nil {
		return false, fmt.Errorf("make parked %s of %s due: %w", p.Step, p.Key, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Fail gives a parked step up: it is never retried again, and the resolution says why; false when no
// such step is parked.
func (s *ParkedSteps) Fail(ctx context.Context, p workflow.ParkedStep, why string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `update workflow_parked set status = 'failed', resolution = $3, updated_at = now()
		where payment_id = $1 and step = $2 and status = 'parked'`, p.Key, p.Step, "force-failed: "+why)
	if err != nil {
		return false, fmt.Errorf("fail parked %s of %s: %w", p.Step, p.Key, err)
	}
	return tag.RowsAffected() == 1, nil
}
