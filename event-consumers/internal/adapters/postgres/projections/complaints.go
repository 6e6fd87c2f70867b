package projections

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"upi/shared/contract/events"
	"upi/shared/contract/projection"
	"upi/shared/platform/eventstore"
)

// Complaints is the "complaints" projection: every complaint with its status and the owners who may read
// it (the payer's, who raised it, and the payee's, the merchant's).
type Complaints struct{}

// Name implements runner.Projection.
func (Complaints) Name() string { return projection.Complaints }

// Tables implements runner.Projection.
func (Complaints) Tables() []string { return []string{"complaints", "complaint_account_owners"} }

// Uses implements runner.Selective.
func (Complaints) Uses(e eventstore.Event) bool {
	return e.AggregateType == events.AggregateComplaint || e.Type == events.AccountOpened
}

// Apply implements runner.Projection.
func (Complaints) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	for _, e := range batch {
		if e.Type != events.AccountOpened && e.AggregateType != events.AggregateComplaint {
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
			tag, err := tx.Exec(ctx, `
				update complaints set status = $2, resolution_code = $3, resolved_by = $4, updated_at = $5,
					tx_id = $6::bigint::text::xid8, global_position = $7
				where complaint_id = $1::uuid and status = 'RAISED'`,
				p.ComplaintID, p.Status, p.Resolution, p.By, e.CreatedAt, txID(e), e.Position.GlobalPosition)
			if err != nil {
				return applyError(e, fmt.Errorf("resolve complaint %s: %w", p.ComplaintID, err))
			}
			if tag.RowsAffected() != 1 {
				return applyError(e, fmt.Errorf("ordering violation: complaint %s is not raised", p.ComplaintID))
			}
		default:
			return applyError(e, fmt.Errorf("unhandled event type %s", e.Type))
		}
	}
	return nil
}
