package postgres

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/shared/contract"
)

// CollectRequests reads the "payments" projection's collect requests (collect_requests); it implements
// expiry.DueCollects.
type CollectRequests struct {
	pool *pgxpool.Pool
}

// NewCollectRequests returns the collect requests of the database behind pool.
func NewCollectRequests(pool *pgxpool.Pool) *CollectRequests {
	return &CollectRequests{pool: pool}
}

// DueCollects implements expiry.DueCollects.
func (c *CollectRequests) DueCollects(ctx context.Context, limit int) ([]uuid.UUID, error) {
	rows, err := c.pool.Query(ctx, `select collect_id from collect_requests
		where status = 'PENDING' and expires_at <= now() order by expires_at limit $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read due collect requests: %w", err)
	}
	defer rows.Close()
	var due []uuid.UUID
	for rows.Next() {
		var id [16]byte
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read due collect requests: %w", err)
		}
		due = append(due, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read due collect requests: %w", err)
	}
	return due, nil
}

// Complaints reads the "complaints" projection; it implements complaints.Open.
type Complaints struct {
	pool *pgxpool.Pool
}

// NewComplaints returns the complaints of the database behind pool.
func NewComplaints(pool *pgxpool.Pool) *Complaints { return &Complaints{pool: pool} }

// AnswerableComplaints implements complaints.Open: the raised complaints the log answers (no merchant's
// due date), oldest first.
func (c *Complaints) AnswerableComplaints(ctx context.Context, limit int) ([]contract.ComplaintRef, error) {
	rows, err := c.pool.Query(ctx, `select complaint_id, payment_id from complaints
		where status = 'RAISED' and due_at is null order by created_at limit $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read open complaints: %w", err)
	}
	defer rows.Close()
	var out []contract.ComplaintRef
	for rows.Next() {
		var cid, pid [16]byte
		if err := rows.Scan(&cid, &pid); err != nil {
			return nil, fmt.Errorf("read open complaints: %w", err)
		}
		out = append(out, contract.ComplaintRef{ComplaintID: cid, PaymentID: pid})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read open complaints: %w", err)
	}
	return out, nil
}
