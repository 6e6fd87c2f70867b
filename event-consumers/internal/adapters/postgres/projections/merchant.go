package projections

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"upi/shared/contract/events"
	"upi/shared/contract/projection"
	"upi/shared/platform/eventstore"
)

// Merchant is the "merchant" projection: dynamic QR codes, and mandates with their debits and audit trail.
// Its debit rows are also what event-consumers' mandate timer reads, so it follows the payments that
// mandates start to their end. QR codes and mandates are few beside payments: each event is one statement
// or two; a batch of payments' endings is one statement.
type Merchant struct{}

// Name implements runner.Projection.
func (Merchant) Name() string { return projection.Merchant }

// Tables implements runner.Projection.
func (Merchant) Tables() []string {
	return []string{"qr_codes", "mandates", "mandate_debits", "mandate_events"}
}

// Uses implements runner.Selective: QR codes' and mandates' events, and payments' endings (a mandate's
// debit follows its payment to its end). A batch without any is not a transaction of this projection.
func (Merchant) Uses(e eventstore.Event) bool {
	return paymentEnded(e) || e.AggregateType == events.AggregateQR || e.AggregateType == events.AggregateMandate
}

// paymentEnded reports whether e ends a payment.
func paymentEnded(e eventstore.Event) bool {
	return e.AggregateType == events.AggregatePayment && (e.Type == events.PaymentCompleted || e.Type == events.PaymentFailed)
}

// Apply implements runner.Projection.
func (Merchant) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	var ended, status []string
	for _, e := range batch {
		if paymentEnded(e) {
			ended, status = append(ended, e.AggregateID), append(status, map[string]string{
				events.PaymentCompleted: "COMPLETED", events.PaymentFailed: "FAILED"}[e.Type])
			continue
		}
		if e.AggregateType != events.AggregateQR && e.AggregateType != events.AggregateMandate {
			continue
		}
		if len(ended) > 0 { // keep the log's order: endings seen so far first
			if err := paymentsEnded(ctx, tx, ended, status); err != nil {
				return err
			}
			ended, status = nil, nil
		}
		p, err := eventstore.PayloadOf(e, events.Decode)
		if err != nil {
			return applyError(e, err)
		}
		if err := applyMerchant(ctx, tx, e, p); err != nil {
			return applyError(e, err)
		}
	}
	return paymentsEnded(ctx, tx, ended, status)
}

// paymentsEnded records the outcome of the mandates' payments among ended, and makes their debits due
// for the timer.
func paymentsEnded(ctx context.Context, tx pgx.Tx, ended, status []string) error {
	if len(ended) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `
		update mandate_debits d set payment_status = u.status, due_at = d.updated_at
		from unnest($1::text[], $2::text[]) as u(id, status)
		where d.payment_id = u.id::uuid and d.status = 'EXECUTING'`, ended, status)
	if err != nil {
		return fmt.Errorf("record mandate payments' outcomes: %w", err)
	}
	return nil
}

func applyMerchant(ctx context.Context, tx pgx.Tx, e eventstore.Event, p events.Payload) error {
	gp, txid := e.Position.GlobalPosition, txID(e)
	switch p := p.(type) {
	case events.QRCreatedV1:
		return exec1(ctx, tx, `
			insert into qr_codes (qr_id, payee_vpa, payee_owner, payee_name, mcc, merchant_reference, amount_paise,
				min_amount_paise, note, status, expires_at, created_at, updated_at, version, tx_id, global_position)
			values ($1::uuid, $2, $3, $4, nullif($5, ''), $6, nullif($7::bigint, 0), nullif($8::bigint, 0),
				nullif($9, ''), 'ACTIVE', $10::timestamptz, $11, $11, 1, $12::bigint::text::xid8, $13)`,
			p.QRID, p.PayeeVPA, p.ClientID, p.PayeeName, p.MCC, p.Ref, p.AmountPaise, p.MinPaise, p.Note, p.ExpiresAt,
			e.CreatedAt, txid, gp)
	case events.QRPaidV1:
		return exec1(ctx, tx, `
			update qr_codes set status = 'PAID', payment_id = $2::uuid, updated_at = $3, version = $4,
				tx_id = $5::bigint::text::xid8, global_position = $6
			where qr_id = $1::uuid and version = $4 - 1`, p.QRID, p.PaymentID, e.CreatedAt, e.Version, txid, gp)
	}
	if err := mandateTrail(ctx, tx, e, p); err != nil {
		return err
	}
	if r, ok := p.(events.MandateRequestedV1); ok {
		return exec1(ctx, tx, `
			insert into mandates (mandate_id, umn, payer_vpa, payee_vpa, payer_owner, payee_owner, amount_paise,
				amount_rule, frequency, valid_from, valid_until, revocable, purpose, status, expires_at, created_at,
				updated_at, version, seq, tx_id, global_position)
			values ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10::timestamptz, $11::timestamptz, $12, $13,
				'PENDING_APPROVAL', $14::timestamptz, $15, $15, 1, $16, $17::bigint::text::xid8, $16)`,
			r.MandateID, r.UMN, r.PayerVPA, r.PayeeVPA, r.PayerClient, r.ClientID, r.AmountPaise, r.AmountRule,
			r.Frequency, r.ValidFrom, r.ValidUntil, r.Revocable, r.Purpose, r.ExpiresAt, e.CreatedAt, gp, txid)
	}
	// Every later event moves the mandate's version (the guard of its order) and, for a change of state,
	// its status.
	status, npci, by := "", "", ""
	switch p := p.(type) {
	case events.MandateApprovedV1, events.MandateResumedV1:
		status = "ACTIVE"
	case events.MandateDeclinedV1:
		status, npci = "DECLINED", events.NPCIMandateDeclined
	case events.MandateExpiredV1:
		status, npci = "EXPIRED", events.NPCIMandateExpired
	case events.MandatePausedV1:
		status = "PAUSED"
	case events.MandateRevokedV1:
		status, by = "REVOKED", p.By
	case events.MandateCompletedV1:
		status = "COMPLETED"
	}
	if err := exec1(ctx, tx, `
		update mandates set status = coalesce(nullif($2, ''), status), npci_code = coalesce(nullif($3, ''), npci_code),
			revoked_by = coalesce(nullif($4, ''), revoked_by), updated_at = $5, version = $6,
			tx_id = $7::bigint::text::xid8, global_position = $8
		where mandate_id = $1::uuid and version = $6 - 1`,
		e.AggregateID, status, npci, by, e.CreatedAt, e.Version, txid, gp); err != nil {
		return err
	}
	return mandateDebit(ctx, tx, e, p)
}

// mandateDebit applies a debit's event to its row.
func mandateDebit(ctx context.Context, tx pgx.Tx, e eventstore.Event, p events.Payload) error {
	gp, txid := e.Position.GlobalPosition, txID(e)
	set := func(id, assignments string, args ...any) error {
		return exec1(ctx, tx, `update mandate_debits set `+assignments+`, updated_at = $2, tx_id = $3::bigint::text::xid8,
			global_position = $4 where notification_id = $1::uuid`, append([]any{id, e.CreatedAt, txid, gp}, args...)...)
	}
	switch p := p.(type) {
	case events.MandateDebitNotifiedV1:
		due := p.ExecuteAt
		if p.NeedsApproval {
			due = p.ApproveBy
		}
		return exec1(ctx, tx, `
			insert into mandate_debits (notification_id, mandate_id, amount_paise, debit_at, execute_at, needs_approval,
				approve_by, status, due_at, seq, created_at, updated_at, tx_id, global_position)
			values ($1::uuid, $2::uuid, $3, $4::timestamptz, $5::timestamptz, $6, nullif($7, '')::timestamptz,
				'SCHEDULED', $8::timestamptz, $9, $10, $10, $11::bigint::text::xid8, $9)`,
			p.NotificationID, p.MandateID, p.AmountPaise, p.DebitAt, p.ExecuteAt, p.NeedsApproval, p.ApproveBy, due,
			gp, e.CreatedAt, txid)
	case events.MandateDebitApprovedV1:
		return set(p.NotificationID, `approved = true, due_at = execute_at`)
	case events.MandateDebitAttemptedV1:
		return set(p.NotificationID, `status = 'EXECUTING', attempt = $5, payment_id = $6::uuid, payment_status = null,
			due_at = null`, p.Attempt, p.PaymentID)
	case events.MandateDebitRetryScheduledV1:
		return set(p.NotificationID, `status = 'RETRY_SCHEDULED', failure_code = $5, due_at = $6::timestamptz`,
			p.Code, p.RetryAt)
	case events.MandateDebitSucceededV1:
		return set(p.NotificationID, `status = 'SUCCEEDED', failure_code = null, due_at = null`)
	case events.MandateDebitFailedV1:
		return set(p.NotificationID, `status = 'FAILED', failure_code = $5, due_at = null`, p.Code)
	}
	return nil
}

// mandateTrail adds a mandate event to its audit trail.
func mandateTrail(ctx context.Context, tx pgx.Tx, e eventstore.Event, p events.Payload) error {
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return exec1(ctx, tx, `
		insert into mandate_events (mandate_id, version, event_type, at, data, tx_id, global_position)
		values ($1::uuid, $2, $3, $4, $5::jsonb, $6::bigint::text::xid8, $7)`,
		e.AggregateID, e.Version, e.Type, e.CreatedAt, data, txID(e), e.Position.GlobalPosition)
}

// exec1 runs a statement that must change exactly one row: anything else is an ordering violation.
func exec1(ctx context.Context, tx pgx.Tx, sql string, args ...any) error {
	tag, err := tx.Exec(ctx, sql, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("ordering violation: %d rows changed where one was expected", tag.RowsAffected())
	}
	return nil
}
