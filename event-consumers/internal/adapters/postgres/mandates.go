package postgres

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/shared/contract"
)

// Mandates reads the "merchant" projection's mandates and debits; it implements mandates.Due.
type Mandates struct {
	pool *pgxpool.Pool
}

// NewMandates returns the mandates of the database behind pool.
func NewMandates(pool *pgxpool.Pool) *Mandates { return &Mandates{pool: pool} }

// DueMandates implements mandates.Due: debits due (to run, to retry, past their approval's deadline, or
// whose payment ended), then mandates pending past their expiry or active past their validity.
func (m *Mandates) DueMandates(ctx context.Context, limit int) ([]contract.MandateTimer, error) {
	rows, err := m.pool.Query(ctx, `
		(select mandate_id, notification_id, due_at from mandate_debits where due_at <= now() order by due_at limit $1)
		union all
		(select mandate_id, null, expires_at from mandates where status = 'PENDING_APPROVAL' and expires_at <= now()
			order by expires_at limit $1)
		union all
		(select mandate_id, null, valid_until from mandates where status in ('ACTIVE', 'PAUSED') and valid_until <= now()
			order by valid_until limit $1)
		order by 3 limit $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read due mandates: %w", err)
	}
	defer rows.Close()
	var due []contract.MandateTimer
	for rows.Next() {
		var mid [16]byte
		var nid *[16]byte
		var at any
		if err := rows.Scan(&mid, &nid, &at); err != nil {
			return nil, fmt.Errorf("read due mandates: %w", err)
		}
		t := contract.MandateTimer{MandateID: mid}
		if nid != nil {
			t.NotificationID = uuid.UUID(*nid)
		}
		due = append(due, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read due mandates: %w", err)
	}
	return due, nil
}
