package projections

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"upi/shared/contract"
	"upi/shared/events"
	"upi/shared/eventstore"
	"upi/shared/projection"
)

// Payments is the "payments" projection: payments, their audit trails, and the account owners needed to
// decide who may see a payment (kept here so that the projection depends on no other projection's tables).
type Payments struct{}

// Name implements runner.Projection.
func (Payments) Name() string { return projection.Payments }

// Tables implements runner.Projection.
func (Payments) Tables() []string {
	return []string{"payments", "payment_events", "payment_account_owners"}
}

// Apply implements runner.Projection. It notifies projection.PaymentSettledChannel with the payments that
// became terminal, so that long-polling readers answer as soon as the batch commits.
func (Payments) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	b := &pgx.Batch{}
	var settled []string
	for _, e := range batch {
		p, err := events.Decode(e.Type, e.Payload)
		if err != nil {
			return applyError(e, err)
		}
		switch p := p.(type) {
		case events.AccountOpenedV1:
			b.Queue(`insert into payment_account_owners (vpa, owner_client_id) values ($1, $2)`,
				e.AggregateID, p.OwnerClientID)
		case events.FundsDepositedV1:
			// no payment involved
		case events.AccountDebitedV1:
			trail(b, e, p.PaymentID)
		case events.DebitRejectedV1:
			trail(b, e, p.PaymentID)
		case events.AccountCreditedV1:
			trail(b, e, p.PaymentID)
		case events.DebitReversedV1:
			trail(b, e, p.PaymentID)
		case events.PaymentInitiatedV1:
			if e.Version != 1 {
				return applyError(e, fmt.Errorf("opens a stream at version %d", e.Version))
			}
			b.Queue(`insert into payments (payment_id, payer_vpa, payee_vpa, amount_paise, note, client_id,
					payer_owner, payee_owner, status, created_at, updated_at, version, tx_id, global_position)
				values ($1::uuid, $2::text, $3::text, $4, $5, $6,
					(select owner_client_id from payment_account_owners where vpa = $2::text),
					(select owner_client_id from payment_account_owners where vpa = $3::text),
					$7, $8, $8, 1, $9::text::xid8, $10)`,
				e.AggregateID, p.PayerVPA, p.PayeeVPA, p.AmountPaise, p.Note, p.ClientID,
				contract.PaymentPending, e.CreatedAt, txID(e), e.Position.GlobalPosition)
			trail(b, e, e.AggregateID)
		case events.PaymentCompletedV1:
			settle(b, e, contract.PaymentCompleted, nil)
			trail(b, e, e.AggregateID)
			settled = append(settled, e.AggregateID)
		case events.PaymentFailedV1:
			settle(b, e, contract.PaymentFailed, &p.Code)
			trail(b, e, e.AggregateID)
			settled = append(settled, e.AggregateID)
		default:
			return applyError(e, fmt.Errorf("unhandled event type %s", e.Type))
		}
	}
	for _, ids := range chunks(settled, 7000) {
		b.Queue(`select pg_notify($1, $2)`, projection.PaymentSettledChannel, ids)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("apply payments batch: %w", err)
	}
	return nil
}

// settle closes a pending payment if it is at the version before e.
func settle(b *pgx.Batch, e eventstore.Event, status string, code *string) {
	b.Queue(`update payments
		set status = $3, failure_code = $4, updated_at = $5, version = $2,
		    tx_id = $6::text::xid8, global_position = $7
		where payment_id = $1::uuid and version = $2 - 1 and status = 'PENDING'`,
		e.AggregateID, e.Version, status, code, e.CreatedAt, txID(e), e.Position.GlobalPosition,
	).Exec(func(tag pgconn.CommandTag) error {
		if tag.RowsAffected() != 1 {
			return applyError(e, errors.New("ordering violation: the payment is missing, not at the previous version, or already terminal"))
		}
		return nil
	})
}

// trail records e in the audit trail of a payment.
func trail(b *pgx.Batch, e eventstore.Event, paymentID string) {
	b.Queue(`insert into payment_events (event_id, payment_id, event_type, at, data, tx_id, global_position)
		values ($1, $2::uuid, $3, $4, $5, $6::text::xid8, $7)`,
		e.ID, paymentID, e.Type, e.CreatedAt, []byte(e.Payload), txID(e), e.Position.GlobalPosition)
}

// chunks joins ids with commas into strings of at most n bytes (a NOTIFY payload is limited to 8000).
func chunks(ids []string, n int) []string {
	var out []string
	var cur strings.Builder
	for _, id := range ids {
		if cur.Len() > 0 && cur.Len()+1+len(id) > n {
			out = append(out, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte(',')
		}
		cur.WriteString(id)
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}
