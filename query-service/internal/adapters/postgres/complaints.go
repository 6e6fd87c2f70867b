package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/query-service/internal/app/complaints"
	"upi/shared/contract"
	"upi/shared/platform/eventstore"
)

// ComplaintReader reads the "complaints" projection; it implements complaints.Reader.
type ComplaintReader struct{ pool *pgxpool.Pool }

// NewComplaintReader returns the complaints reader of the database behind pool.
func NewComplaintReader(pool *pgxpool.Pool) *ComplaintReader { return &ComplaintReader{pool: pool} }

const complaintColumns = `complaint_id::text, payment_id::text, upi_txn_id, payer_vpa, payee_vpa, coalesce(payer_owner, ''),
	coalesce(payee_owner, ''), amount_paise, reason_code, description, status, resolution_code, resolved_by, due_at,
	created_at, updated_at, tx_id::text::bigint, global_position, coalesce(note, ''), chargeback, refund_id::text, refund_status`

func scanComplaint(row pgx.Row) (complaints.Complaint, error) {
	var c complaints.Complaint
	var due *time.Time
	var created, updated time.Time
	var tx, gp int64
	err := row.Scan(&c.ComplaintID, &c.PaymentID, &c.UPITxnID, &c.PayerVPA, &c.PayeeVPA, &c.PayerOwner, &c.PayeeOwner,
		&c.AmountPaise, &c.ReasonCode, &c.Description, &c.Status, &c.ResolutionCode, &c.ResolvedBy, &due, &created, &updated, &tx, &gp,
		&c.Note, &c.Chargeback, &c.RefundID, &c.RefundStatus)
	if err != nil {
		return c, err
	}
	if due != nil {
		s := contract.Time(*due)
		c.DueAt = &s
	}
	c.CreatedAt, c.UpdatedAt = contract.Time(created), contract.Time(updated)
	c.Position = position(&tx, &gp).Token()
	return c, nil
}

// Complaint is one complaint, or found=false.
func (r *ComplaintReader) Complaint(ctx context.Context, id uuid.UUID) (complaints.Complaint, bool, error) {
	c, err := scanComplaint(r.pool.QueryRow(ctx, `select `+complaintColumns+` from complaints where complaint_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, eventstore.MarkUnavailable(fmt.Errorf("read complaint %s: %w", id, err))
	}
	return c, true, nil
}

// Queue is the complaints with status (all if ""), oldest first, at most 1000.
func (r *ComplaintReader) Queue(ctx context.Context, status string) ([]contract.Complaint, error) {
	rows, err := r.pool.Query(ctx, `select `+complaintColumns+` from complaints
		where $1 = '' or status = $1 order by created_at, complaint_id limit 1000`, status)
	if err != nil {
		return nil, eventstore.MarkUnavailable(fmt.Errorf("read complaints: %w", err))
	}
	defer rows.Close()
	out := []contract.Complaint{}
	for rows.Next() {
		c, err := scanComplaint(rows)
		if err != nil {
			return nil, eventstore.MarkUnavailable(fmt.Errorf("read complaints: %w", err))
		}
		out = append(out, c.Complaint)
	}
	if err := rows.Err(); err != nil {
		return nil, eventstore.MarkUnavailable(fmt.Errorf("read complaints: %w", err))
	}
	return out, nil
}
