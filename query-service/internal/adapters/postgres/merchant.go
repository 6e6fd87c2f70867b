package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

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
	pv, _ := vpa.Parse(*payee)
	link := intent.Intent{PayeeVPA: pv, Name: *name, MCC: deref(mcc), Ref: *ref, Note: deref(note),
		AmountPaise: deref64(amount), MinPaise: deref64(minAmount)}
	return app.QRRow{Owner: *owner, Expires: *expires, QR: contract.QR{QRID: *qid, PayeeVPA: *payee, PayeeName: *name,
		MCC: deref(mcc), MerchantReference: *ref, AmountPaise: deref64(amount), MinAmountPaise: deref64(minAmount),
		Note: deref(note), Intent: link.String(), Status: *status, PaymentID: pid, ExpiresAt: contract.Time(*expires),
		CreatedAt: contract.Time(*created), Position: position(rowTx, rowPos).Token()}}, true, cp, nil
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
