package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"upi/query-service/internal/app"
	"upi/shared/contract"
	"upi/shared/contract/intent"
	"upi/shared/contract/projection"
	"upi/shared/contract/vpa"
	"upi/shared/platform/eventstore"
)

// QR implements app.MerchantReader.
func (r *Reader) QR(ctx context.Context, id uuid.UUID) (app.QRRow, bool, eventstore.Position, error) {
	var cpTx, cpPos int64
	var qid, payee, owner, name, mcc, ref, note, status, pid *string
	var amount, minAmount, rowTx, rowPos *int64
	var expires, created *time.Time
	err := r.pool.QueryRow(ctx, `
		select c.tx_id::text::bigint, c.global_position, q.qr_id::text, q.payee_vpa, q.payee_owner, q.payee_name,
			q.mcc, q.merchant_reference, q.amount_paise, q.min_amount_paise, q.note, q.status, q.payment_id::text,
			q.expires_at, q.created_at, q.tx_id::text::bigint, q.global_position
		from projection_checkpoints c left join qr_codes q on q.qr_id = $2
		where c.name = $1`, projection.Merchant, id).Scan(&cpTx, &cpPos, &qid, &payee, &owner, &name, &mcc, &ref,
		&amount, &minAmount, &note, &status, &pid, &expires, &created, &rowTx, &rowPos)
	cp := eventstore.Position{TxID: uint64(cpTx), GlobalPosition: cpPos}
	if err != nil {
		return app.QRRow{}, false, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read qr %s: %w", id, err))
	}
	if qid == nil {
		return app.QRRow{}, false, cp, nil
	}
	deref64 := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	}
	q := contract.QR{QRID: *qid, PayeeVPA: *payee, PayeeName: *name,
		MCC: deref(mcc), MerchantReference: *ref, AmountPaise: deref64(amount), MinAmountPaise: deref64(minAmount),
		Note: deref(note), Status: *status, PaymentID: pid, ExpiresAt: contract.Time(*expires),
		CreatedAt: contract.Time(*created), Position: position(rowTx, rowPos).Token()}
	q.Intent = qrLink(q)
	return app.QRRow{Owner: *owner, Expires: *expires, QR: q}, true, cp, nil
}

// qrLink is the upi://pay link of a dynamic QR.
func qrLink(q contract.QR) string {
	pv, _ := vpa.Parse(q.PayeeVPA)
	return intent.Intent{PayeeVPA: pv, Name: q.PayeeName, MCC: q.MCC, Ref: q.MerchantReference, Note: q.Note,
		AmountPaise: q.AmountPaise, MinPaise: q.MinAmountPaise}.String()
}

// Merchant implements app.MerchantReader.
func (r *Reader) Merchant(ctx context.Context, v string) (app.Merchant, bool, eventstore.Position, error) {
	var cpTx, cpPos int64
	var owner, name, kind, mcc *string
	err := r.pool.QueryRow(ctx, `
		select c.tx_id::text::bigint, c.global_position, a.owner_client_id, a.holder_name, a.type, a.mcc
		from projection_checkpoints c left join accounts a on a.vpa = $2
		where c.name = $1`, projection.Accounts, v).Scan(&cpTx, &cpPos, &owner, &name, &kind, &mcc)
	cp := eventstore.Position{TxID: uint64(cpTx), GlobalPosition: cpPos}
	if err != nil {
		return app.Merchant{}, false, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read account %s: %w", v, err))
	}
	if owner == nil {
		return app.Merchant{}, false, cp, nil
	}
	return app.Merchant{Owner: *owner, Name: *name, Type: *kind, MCC: deref(mcc)}, true, cp, nil
}

// PaymentsByReference implements app.MerchantReader: at most 100, newest first.
func (r *Reader) PaymentsByReference(ctx context.Context, ref string) ([]app.Payment, eventstore.Position, error) {
	rows, err := r.pool.Query(ctx, `
		select c.tx_id::text::bigint, c.global_position, `+paymentColumns+`
		from projection_checkpoints c left join payments p on p.merchant_reference = $2
		where c.name = $1
		order by p.created_at desc
		limit 100`, projection.Payments, ref)
	if err != nil {
		return nil, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read payments of reference %s: %w", ref, err))
	}
	defer rows.Close()
	var out []app.Payment
	cp := eventstore.Start
	for rows.Next() {
		var cpTx, cpPos int64
		var row paymentRow
		if err := rows.Scan(append([]any{&cpTx, &cpPos}, row.dest()...)...); err != nil {
			return nil, eventstore.Start, fmt.Errorf("read payments of reference %s: %w", ref, err)
		}
		cp = eventstore.Position{TxID: uint64(cpTx), GlobalPosition: cpPos}
		if p, found := row.payment(); found {
			out = append(out, p)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read payments of reference %s: %w", ref, err))
	}
	return out, cp, nil
}

// Mandate implements app.MerchantReader: the mandate and its debits, read in one snapshot.
func (r *Reader) Mandate(ctx context.Context, id uuid.UUID) (app.MandateRow, bool, eventstore.Position, error) {
	tx, err := r.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return app.MandateRow{}, false, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read mandate %s: %w", id, err))
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var cpTx, cpPos int64
	var mid, umn, payer, payee, payerOwner, payeeOwner, rule, freq, purpose, status, npci, revokedBy *string
	var amount, rowTx, rowPos *int64
	var from, until, expires, created, updated *time.Time
	var revocable *bool
	err = tx.QueryRow(ctx, `
		select c.tx_id::text::bigint, c.global_position, m.mandate_id::text, m.umn, m.payer_vpa, m.payee_vpa,
			coalesce(m.payer_owner, ''), coalesce(m.payee_owner, ''), m.amount_paise, m.amount_rule, m.frequency,
			m.valid_from, m.valid_until, m.revocable, m.purpose, m.status, m.npci_code, m.revoked_by, m.expires_at,
			m.created_at, m.updated_at, m.tx_id::text::bigint, m.global_position
		from projection_checkpoints c left join mandates m on m.mandate_id = $2
		where c.name = $1`, projection.Merchant, id).Scan(&cpTx, &cpPos, &mid, &umn, &payer, &payee, &payerOwner,
		&payeeOwner, &amount, &rule, &freq, &from, &until, &revocable, &purpose, &status, &npci, &revokedBy, &expires,
		&created, &updated, &rowTx, &rowPos)
	cp := eventstore.Position{TxID: uint64(cpTx), GlobalPosition: cpPos}
	if err != nil {
		return app.MandateRow{}, false, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read mandate %s: %w", id, err))
	}
	if mid == nil {
		return app.MandateRow{}, false, cp, nil
	}
	m := app.MandateRow{PayerOwner: *payerOwner, PayeeOwner: *payeeOwner, Mandate: contract.Mandate{
		MandateID: *mid, UMN: *umn, PayerVPA: *payer, PayeeVPA: *payee, AmountPaise: *amount, AmountRule: *rule,
		Frequency: *freq, ValidFrom: contract.Time(*from), ValidUntil: contract.Time(*until), Revocable: *revocable,
		Purpose: *purpose, Status: *status, NPCICode: npci, RevokedBy: deref(revokedBy), ExpiresAt: contract.Time(*expires),
		Debits: []contract.MandateDebit{}, CreatedAt: contract.Time(*created), UpdatedAt: contract.Time(*updated),
		Position: position(rowTx, rowPos).Token()}}
	rows, err := tx.Query(ctx, `
		select notification_id::text, amount_paise, debit_at, execute_at, needs_approval, approve_by, approved, status,
			attempt, payment_id::text, failure_code, tx_id::text::bigint, global_position
		from mandate_debits where mandate_id = $1 order by seq`, id)
	if err != nil {
		return app.MandateRow{}, false, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read mandate %s debits: %w", id, err))
	}
	defer rows.Close()
	for rows.Next() {
		var d contract.MandateDebit
		var debitAt, execAt time.Time
		var approveBy *time.Time
		var dTx, dPos int64
		if err := rows.Scan(&d.NotificationID, &d.AmountPaise, &debitAt, &execAt, &d.NeedsApproval, &approveBy, &d.Approved,
			&d.Status, &d.Attempt, &d.PaymentID, &d.FailureCode, &dTx, &dPos); err != nil {
			return app.MandateRow{}, false, eventstore.Start, fmt.Errorf("read mandate %s debits: %w", id, err)
		}
		d.MandateID, d.DebitAt, d.ExecuteAt = *mid, contract.Time(debitAt), contract.Time(execAt)
		if approveBy != nil {
			d.ApproveBy = contract.Time(*approveBy)
		}
		if d.Status == "SUCCEEDED" {
			d.FailureCode = nil
		}
		d.Position = position(&dTx, &dPos).Token()
		m.Debits = append(m.Debits, d)
	}
	if err := rows.Err(); err != nil {
		return app.MandateRow{}, false, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read mandate %s debits: %w", id, err))
	}
	return m, true, cp, nil
}

// MandateEvents implements app.MerchantReader.
func (r *Reader) MandateEvents(ctx context.Context, id uuid.UUID) ([]contract.PaymentEvent, error) {
	rows, err := r.pool.Query(ctx, `
		select event_type, at, tx_id::text::bigint, global_position, data from mandate_events
		where mandate_id = $1 order by version`, id)
	if err != nil {
		return nil, eventstore.MarkUnavailable(fmt.Errorf("read mandate %s events: %w", id, err))
	}
	defer rows.Close()
	var out []contract.PaymentEvent
	for rows.Next() {
		var e contract.PaymentEvent
		var at time.Time
		var tx, gp int64
		if err := rows.Scan(&e.EventType, &at, &tx, &gp, &e.Data); err != nil {
			return nil, fmt.Errorf("read mandate %s events: %w", id, err)
		}
		e.At, e.Position = contract.Time(at), position(&tx, &gp).Token()
		out = append(out, e)
	}
	return out, rows.Err()
}
