package projections

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/platform/eventstore"
)

// collectChanges are a batch's collect request events, in log order. Collect requests are few beside
// payments, so each is one statement.
type collectChanges []collectChange

type collectChange struct {
	e eventstore.Event
	p events.Payload
}

func (c collectChanges) apply(ctx context.Context, tx pgx.Tx) error {
	for _, ch := range c {
		e := ch.e
		if req, ok := ch.p.(events.CollectRequestedV1); ok {
			if _, err := tx.Exec(ctx, `
				insert into collect_requests (collect_id, payee_vpa, payer_vpa, payee_owner, payer_owner, amount_paise,
					note, status, expires_at, created_at, updated_at, seq, tx_id, global_position)
				select $1::uuid, $2::text, $3::text,
					(select owner_client_id from payment_account_owners where vpa = $2::text),
					(select owner_client_id from payment_account_owners where vpa = $3::text),
					$4::bigint, $5::text, 'PENDING', $6::timestamptz, $7::timestamptz, $7::timestamptz, $8::bigint,
					$9::bigint::text::xid8, $8::bigint`,
				req.CollectID, req.PayeeVPA, req.PayerVPA, req.AmountPaise, req.Note, req.ExpiresAt, e.CreatedAt,
				e.Position.GlobalPosition, txID(e)); err != nil {
				return fmt.Errorf("record collect request %s: %w", req.CollectID, err)
			}
			continue
		}
		terms, _ := events.Collect(ch.p)
		var status string
		var paymentID, npci *string
		switch p := ch.p.(type) {
		case events.CollectApprovedV1:
			status, paymentID = contract.CollectApproved, &p.PaymentID
		case events.CollectDeclinedV1:
			code := events.NPCICollectDeclined
			status, npci = contract.CollectDeclined, &code
		case events.CollectExpiredV1:
			code := events.NPCICollectExpired
			status, npci = contract.CollectExpired, &code
		}
		tag, err := tx.Exec(ctx, `
			update collect_requests set status = $2::text, payment_id = $3::uuid, npci_code = $4::text,
				updated_at = $5::timestamptz, tx_id = $6::bigint::text::xid8, global_position = $7::bigint
			where collect_id = $1::uuid and status = 'PENDING'`,
			terms.CollectID, status, paymentID, npci, e.CreatedAt, txID(e), e.Position.GlobalPosition)
		if err != nil {
			return fmt.Errorf("close collect request %s: %w", terms.CollectID, err)
		}
		if tag.RowsAffected() != 1 {
			return applyError(e, fmt.Errorf("ordering violation: collect request %s is not pending", terms.CollectID))
		}
	}
	return nil
}
