package projections

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/projection"
	"upi/shared/platform/eventstore"
)

// Complaints is the "complaints" projection: every complaint with its status and the owners who may read
// it (the payer's, who raised it, and the payee's, the merchant's); a settled dispute's refund, followed to
// its outcome on the payment's stream (RefundSettled).
type Complaints struct{}

// Name implements runner.Projection.
func (Complaints) Name() string { return projection.Complaints }

// Tables implements runner.Projection.
func (Complaints) Tables() []string { return []string{"complaints", "complaint_account_owners"} }

// Uses implements runner.Selective.
func (Complaints) Uses(e eventstore.Event) bool {
	return e.AggregateType == events.AggregateComplaint || e.Type == events.AccountOpened || e.Type == events.RefundSettled
}

// Apply implements runner.Projection.
func (Complaints) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	for _, e := range batch {
		if e.Type != events.AccountOpened && e.Type != events.RefundSettled && e.AggregateType != events.AggregateComplaint {
			continue
		}
		p, err := eventstore.PayloadOf(e, events.Decode)
		if err != nil {
			return applyError(e, err)
		}
		switch p := p.(type) {
		case events.AccountOpenedV1:
			if _, err := tx.Exec(ctx, `insert into complaint_account_owners (vpa, owner_client_id) values ($1, $2)`,
				p.VPA, p.OwnerClientID); err != nil {
				return applyError(e, fmt.Errorf("record owner of %s: %w", p.VPA, err))
			}
		case events.ComplaintRaisedV1:
			var due *string
			if p.DueAt != "" {
				due = &p.DueAt
			}
			if _, err := tx.Exec(ctx, `
				insert into complaints (complaint_id, payment_id, upi_txn_id, payer_vpa, payee_vpa, payer_owner, payee_owner,
					amount_paise, reason_code, description, status, due_at, created_at, updated_at, tx_id, global_position)
				select $1::uuid, $2::uuid, $3, $4::text, $5::text,
					(select owner_client_id from complaint_account_owners where vpa = $4::text),
					(select owner_client_id from complaint_account_owners where vpa = $5::text),
					$6, $7, $8, 'RAISED', $9::timestamptz, $10, $10, $11::bigint::text::xid8, $12`,
				p.ComplaintID, p.PaymentID, p.UPITxnID, p.PayerVPA, p.PayeeVPA, p.AmountPaise, p.Reason, p.Description,
				due, e.CreatedAt, txID(e), e.Position.GlobalPosition); err != nil {
				return applyError(e, fmt.Errorf("record complaint %s: %w", p.ComplaintID, err))
			}
		case events.ComplaintResolvedV1:
			var note *string
			if p.Note != "" {
				note = &p.Note
			}
			tag, err := tx.Exec(ctx, `
				update complaints set status = $2, resolution_code = $3, resolved_by = $4, updated_at = $5,
					tx_id = $6::bigint::text::xid8, global_position = $7, note = coalesce($8, note)
				where complaint_id = $1::uuid and status = 'RAISED'`,
				p.ComplaintID, p.Status, p.Resolution, p.By, e.CreatedAt, txID(e), e.Position.GlobalPosition, note)
			if err != nil {
				return applyError(e, fmt.Errorf("resolve complaint %s: %w", p.ComplaintID, err))
			}
			if tag.RowsAffected() != 1 {
				return applyError(e, fmt.Errorf("ordering violation: complaint %s is not raised", p.ComplaintID))
			}
		case events.ComplaintAcceptedV1:
			if err := settle(ctx, tx, e, p.ComplaintSettlementV1, false, p.Note, "RAISED"); err != nil {
				return err
			}
		case events.ChargebackRaisedV1:
			if err := settle(ctx, tx, e, p.ComplaintSettlementV1, true, "", "RAISED"); err != nil {
				return err
			}
		case events.ComplaintRefundRetriedV1:
			if err := settle(ctx, tx, e, p.ComplaintSettlementV1, p.Chargeback, "", "RESOLVED"); err != nil {
				return err
			}
		case events.RefundSettledV1:
			// A settlement's refund ended (no row for a merchant's own refund).
			status := contract.ComplaintRefundCompleted
			switch {
			case p.Status != events.RefundStatusCompleted && p.Code == events.CodeInsufficientFunds:
				status = contract.ComplaintRefundAwaitingFunds
			case p.Status != events.RefundStatusCompleted:
				status = contract.ComplaintRefundFailed
			}
			if _, err := tx.Exec(ctx, `
				update complaints set refund_status = $2, updated_at = $3, tx_id = $4::bigint::text::xid8, global_position = $5
				where refund_id = $1::uuid`, p.RefundID, status, e.CreatedAt, txID(e), e.Position.GlobalPosition); err != nil {
				return applyError(e, fmt.Errorf("record refund %s of a complaint: %w", p.RefundID, err))
			}
		default:
			return applyError(e, fmt.Errorf("unhandled event type %s", e.Type))
		}
	}
	return nil
}

// settle records a dispute's settlement, or a new attempt at its refund, on the complaint in status.
func settle(ctx context.Context, tx pgx.Tx, e eventstore.Event, p events.ComplaintSettlementV1, chargeback bool, note, status string) error {
	var refund *string
	var attempt *int
	var amount *int64
	pending := contract.ComplaintRefundPending
	refundStatus := &pending
	if p.RefundID != "" {
		refund, attempt, amount = &p.RefundID, &p.Attempt, &p.RefundAmountPaise
	} else {
		refundStatus = nil
	}
	var n *string
	if note != "" {
		n = &note
	}
	tag, err := tx.Exec(ctx, `
		update complaints set chargeback = $2, refund_id = $3::uuid, refund_attempt = $4, refund_amount_paise = $5,
			refund_status = $6, note = coalesce($7, note), updated_at = $8, tx_id = $9::bigint::text::xid8, global_position = $10
		where complaint_id = $1::uuid and status = $11`,
		p.ComplaintID, chargeback, refund, attempt, amount, refundStatus, n, e.CreatedAt, txID(e), e.Position.GlobalPosition, status)
	if err != nil {
		return applyError(e, fmt.Errorf("settle complaint %s: %w", p.ComplaintID, err))
	}
	if tag.RowsAffected() != 1 {
		return applyError(e, fmt.Errorf("ordering violation: complaint %s is not %s", p.ComplaintID, status))
	}
	return nil
}
