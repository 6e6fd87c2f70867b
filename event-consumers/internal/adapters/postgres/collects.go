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

// DueDisputes implements complaints.Open: the disputes still raised past their due_at (COMPLAINT_TAT),
// the earliest due first.
func (c *Complaints) DueDisputes(ctx context.Context, limit int) ([]contract.ComplaintRef, error) {
	rows, err := c.pool.Query(ctx, `select complaint_id, payment_id from complaints
		where status = 'RAISED' and due_at is not null and due_at <= now() order by due_at limit $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read due disputes: %w", err)
	}
	defer rows.Close()
	var out []contract.ComplaintRef
	for rows.Next() {
		var cid, pid [16]byte
		if err := rows.Scan(&cid, &pid); err != nil {
			return nil, fmt.Errorf("read due disputes: %w", err)
		}
		out = append(out, contract.ComplaintRef{ComplaintID: cid, PaymentID: pid})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read due disputes: %w", err)
	}
	return out, nil
}

// FailedRefunds implements complaints.Open: the settled disputes whose latest refund failed and whose
// merchant's balance, as the accounts projection has it, now covers the refund (the command service
// checks the balance again under the account's lock). Reading it costs one index scan of the failed ones,
// so every round may ask.
func (c *Complaints) FailedRefunds(ctx context.Context, limit int) ([]contract.ComplaintRetry, error) {
	rows, err := c.pool.Query(ctx, `select c.complaint_id, c.payment_id, c.refund_id, c.refund_attempt from complaints c
		join accounts a on a.vpa = c.payee_vpa
		where c.refund_status in ('AWAITING_FUNDS', 'FAILED') and a.balance_paise >= c.refund_amount_paise
		order by c.updated_at limit $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read failed complaint refunds: %w", err)
	}
	defer rows.Close()
	var out []contract.ComplaintRetry
	for rows.Next() {
		var cid, pid, rid [16]byte
		var attempt int
		if err := rows.Scan(&cid, &pid, &rid, &attempt); err != nil {
			return nil, fmt.Errorf("read failed complaint refunds: %w", err)
		}
		out = append(out, contract.ComplaintRetry{ComplaintID: cid, PaymentID: pid, RefundID: rid, Attempt: attempt})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read failed complaint refunds: %w", err)
	}
	return out, nil
}
