package projections

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/ids"
	"upi/shared/contract/projection"
	"upi/shared/platform/eventstore"
)

// Payments is the "payments" projection: payments, their audit trails, and the account owners needed to
// decide who may see a payment (kept here so that the projection depends on no other projection's tables).
type Payments struct{}

// Name implements runner.Projection.
func (Payments) Name() string { return projection.Payments }

// Tables implements runner.Projection.
func (Payments) Tables() []string {
	return []string{"payments", "payment_events", "payment_account_owners", "refunds", "collect_requests"}
}

// Apply implements runner.Projection. It notifies projection.PaymentSettledChannel with the payments that
// became terminal, so that long-polling readers answer as soon as the batch commits.
func (Payments) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	var owners ownerRows
	var initiated initiationRows
	var closed closingRows
	var trail trailRows
	var settled []string
	var debits debitRows
	closing := map[string]eventstore.Event{}
	refunds := refundChanges{refunded: map[string]int64{}}
	var collects collectChanges
	record := trail.add
	for _, e := range batch {
		p, err := events.Decode(e.Type, e.Payload)
		if err != nil {
			return applyError(e, err)
		}
		switch p := p.(type) {
		case events.AccountOpenedV1:
			owners.vpa, owners.owner = append(owners.vpa, e.AggregateID), append(owners.owner, p.OwnerClientID)
		case events.FundsDepositedV1:
			// no payment involved
		case events.AccountDebitedV1:
			record(e, p.PaymentID)
			if p.RRN != "" {
				debits.payment, debits.rrn = append(debits.payment, p.PaymentID), append(debits.rrn, p.RRN)
			}
		case events.DebitRejectedV1:
			record(e, p.PaymentID)
		case events.AccountCreditedV1:
			record(e, p.PaymentID)
		case events.DebitReversedV1:
			record(e, p.PaymentID)
		case events.PaymentInitiatedV1:
			if e.Version != 1 {
				return applyError(e, fmt.Errorf("opens a stream at version %d", e.Version))
			}
			initiated.add(e, p)
			record(e, e.AggregateID)
		case events.PaymentCompletedV1:
			closed.add(e, contract.PaymentCompleted, nil)
			record(e, e.AggregateID)
		case events.PaymentFailedV1:
			closed.add(e, contract.PaymentFailed, &p.Code)
			record(e, e.AggregateID)
		case events.RefundReservedV1:
			// The refund's audit trail is its payment's: every refund event is recorded there too.
			refunds.reserved = append(refunds.reserved, refundRow{e: e, p: p})
			record(e, p.PaymentID)
		case events.RefundDebitedV1:
			refunds.rrn = append(refunds.rrn, [2]string{p.RefundID, p.RRN})
			record(e, p.PaymentID)
		case events.RefundInitiatedV1, events.RefundDebitRejectedV1, events.RefundCreditedV1, events.RefundDebitReversedV1:
			t, _ := events.Refund(p)
			record(e, t.PaymentID)
		case events.RefundCompletedV1:
			refunds.closed = append(refunds.closed, refundClose{e: e, id: p.RefundID, status: contract.PaymentCompleted})
			record(e, p.PaymentID)
		case events.RefundFailedV1:
			code := p.Code
			refunds.closed = append(refunds.closed, refundClose{e: e, id: p.RefundID, status: contract.PaymentFailed, code: &code})
			record(e, p.PaymentID)
		case events.RefundSettledV1:
			if p.Status == events.RefundStatusCompleted {
				refunds.refunded[p.PaymentID] += p.AmountPaise
			}
			record(e, p.PaymentID)
		case events.CollectRequestedV1, events.CollectApprovedV1, events.CollectDeclinedV1, events.CollectExpiredV1:
			collects = append(collects, collectChange{e: e, p: p})
		default:
			return applyError(e, fmt.Errorf("unhandled event type %s", e.Type))
		}
		if e.Type == events.PaymentCompleted || e.Type == events.PaymentFailed {
			if prev, dup := closing[e.AggregateID]; dup {
				return applyError(e, fmt.Errorf("ordering violation: payment already closed by %s", prev.ID))
			}
			closing[e.AggregateID] = e
			settled = append(settled, e.AggregateID)
		}
	}

	if len(owners.vpa) > 0 {
		if _, err := tx.Exec(ctx, `insert into payment_account_owners (vpa, owner_client_id)
			select * from unnest($1::text[], $2::text[])`, owners.vpa, owners.owner); err != nil {
			return fmt.Errorf("record account owners: %w", err)
		}
	}
	if len(initiated.id) > 0 {
		if _, err := tx.Exec(ctx, `
			insert into payments (payment_id, payer_vpa, payee_vpa, amount_paise, note, client_id, payer_owner,
				payee_owner, status, created_at, updated_at, version, tx_id, global_position, upi_txn_id)
			select id::uuid, payer, payee, amount, note, client, po.owner_client_id, pe.owner_client_id,
				'PENDING', at, at, 1, txid::text::xid8, gp, upi
			from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
				$7::timestamptz[], $8::bigint[], $9::bigint[], $10::text[])
				as u(id, payer, payee, amount, note, client, at, txid, gp, upi)
			left join payment_account_owners po on po.vpa = u.payer
			left join payment_account_owners pe on pe.vpa = u.payee`,
			initiated.id, initiated.payer, initiated.payee, initiated.amount, initiated.note, initiated.client,
			initiated.at, initiated.tx, initiated.gp, initiated.upi); err != nil {
			return fmt.Errorf("record initiated payments: %w", err)
		}
	}
	// A debit gives its payment the RRN; it follows the payment's initiation in the log (the workflow
	// debits only an initiated payment), so the row is there, in this batch or an earlier one.
	if len(debits.payment) > 0 {
		tag, err := tx.Exec(ctx, `
			update payments p set rrn = u.rrn
			from unnest($1::text[], $2::text[]) as u(id, rrn)
			where p.payment_id = u.id::uuid`, debits.payment, debits.rrn)
		if err != nil {
			return fmt.Errorf("record rrns: %w", err)
		}
		if int(tag.RowsAffected()) != len(debits.payment) {
			return fmt.Errorf("record rrns: %d of %d debited payments found", tag.RowsAffected(), len(debits.payment))
		}
	}
	if len(closed.id) > 0 {
		tag, err := tx.Exec(ctx, `
			update payments p
			set status = u.status, failure_code = u.code, updated_at = u.at, version = u.version,
			    tx_id = u.txid::text::xid8, global_position = u.gp
			from unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[], $7::bigint[])
				as u(id, version, status, code, at, txid, gp)
			where p.payment_id = u.id::uuid and p.version = u.version - 1 and p.status = 'PENDING'`,
			closed.id, closed.version, closed.status, closed.code, closed.at, closed.tx, closed.gp)
		if err != nil {
			return fmt.Errorf("close payments: %w", err)
		}
		if int(tag.RowsAffected()) != len(closed.id) {
			return closeViolation(ctx, tx, closing)
		}
	}
	if err := refunds.apply(ctx, tx); err != nil {
		return err
	}
	if err := collects.apply(ctx, tx); err != nil {
		return err
	}
	if len(trail.id) > 0 {
		if _, err := tx.Exec(ctx, `
			insert into payment_events (event_id, payment_id, event_type, at, data, tx_id, global_position)
			select id, payment::uuid, typ, at, data::jsonb, txid::text::xid8, gp
			from unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::bigint[], $7::bigint[])
				as u(id, payment, typ, at, data, txid, gp)`,
			trail.id, trail.payment, trail.typ, trail.at, trail.data, trail.tx, trail.gp); err != nil {
			return fmt.Errorf("record payment audit trail: %w", err)
		}
	}
	for _, ids := range chunks(settled, 7000) {
		if _, err := tx.Exec(ctx, `select pg_notify($1, $2)`, projection.PaymentSettledChannel, ids); err != nil {
			return fmt.Errorf("notify settled payments: %w", err)
		}
	}
	return nil
}

// ownerRows are the account owners a batch records, column by column for unnest.
type ownerRows struct{ vpa, owner []string }

// initiationRows are the payments a batch initiates.
type initiationRows struct {
	id, payer, payee []string
	amount           []int64
	note, client     []string
	upi              []string
	stamps
}

func (r *initiationRows) add(e eventstore.Event, p events.PaymentInitiatedV1) {
	r.id, r.payer, r.payee = append(r.id, e.AggregateID), append(r.payer, p.PayerVPA), append(r.payee, p.PayeeVPA)
	upi := p.UPITxnID
	if upi == "" { // initiated before the field existed: the same derivation
		if id, err := uuid.Parse(e.AggregateID); err == nil {
			upi = ids.UPITxnID(id)
		}
	}
	r.upi = append(r.upi, upi)
	r.amount, r.note, r.client = append(r.amount, p.AmountPaise), append(r.note, p.Note), append(r.client, p.ClientID)
	r.stamps.add(e)
}

// debitRows are the RRNs a batch's debits give their payments.
type debitRows struct{ payment, rrn []string }

// closingRows are the payments a batch completes or fails; code is nil for a completion.
type closingRows struct {
	id      []string
	version []int32
	status  []string
	code    []*string
	stamps
}

func (r *closingRows) add(e eventstore.Event, status string, code *string) {
	r.id, r.version, r.status, r.code = append(r.id, e.AggregateID), append(r.version, int32(e.Version)), append(r.status, status), append(r.code, code)
	r.stamps.add(e)
}

// trailRows are the payments' audit-trail entries of a batch.
type trailRows struct {
	id                 [][16]byte // pgx encodes [16]byte natively, a uuid.UUID through its Valuer
	payment, typ, data []string
	stamps
}

func (r *trailRows) add(e eventstore.Event, paymentID string) {
	r.id, r.payment, r.typ, r.data = append(r.id, e.ID), append(r.payment, paymentID), append(r.typ, e.Type), append(r.data, string(e.Payload))
	r.stamps.add(e)
}

// closeViolation names a closing event whose payment was missing, not at the previous version or
// already terminal.
func closeViolation(ctx context.Context, tx pgx.Tx, closing map[string]eventstore.Event) error {
	for id, e := range closing {
		var version int
		var status string
		err := tx.QueryRow(ctx, `select version, status from payments where payment_id = $1::uuid`, id).Scan(&version, &status)
		if err != nil {
			return applyError(e, fmt.Errorf("ordering violation: the payment is not initiated (%w)", err))
		}
		if version != e.Version-1 || status != contract.PaymentPending {
			return applyError(e, fmt.Errorf("ordering violation: the payment is %s at version %d", status, version))
		}
	}
	return fmt.Errorf("close payments: some payments were not closed")
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

// refundChanges are what a batch does to refunds: reservations (new rows), RRNs, closings, and the
// completed refunds' amounts by payment. Applied in log order: a refund's reservation precedes its debit
// and close in the log, so its row is there, in this batch or an earlier one.
type refundChanges struct {
	reserved []refundRow
	rrn      [][2]string // refund id, rrn
	closed   []refundClose
	refunded map[string]int64
}

type refundRow struct {
	e eventstore.Event
	p events.RefundReservedV1
}

type refundClose struct {
	e          eventstore.Event
	id, status string
	code       *string
}

func (c refundChanges) apply(ctx context.Context, tx pgx.Tx) error {
	for _, r := range c.reserved {
		if _, err := tx.Exec(ctx, `
			insert into refunds (refund_id, payment_id, payer_vpa, payee_vpa, payer_owner, payee_owner, upi_txn_id,
				amount_paise, reason, status, created_at, updated_at, tx_id, global_position)
			select $1::uuid, $2::uuid, $3::text, $4::text,
				(select owner_client_id from payment_account_owners where vpa = $3::text),
				(select owner_client_id from payment_account_owners where vpa = $4::text), $5, $6, $7, 'PENDING', $8, $8,
				$9::bigint::text::xid8, $10`,
			r.p.RefundID, r.p.PaymentID, r.p.PayerVPA, r.p.PayeeVPA, r.p.UPITxnID, r.p.AmountPaise, r.p.Reason,
			r.e.CreatedAt, txID(r.e), r.e.Position.GlobalPosition); err != nil {
			return fmt.Errorf("record refund %s: %w", r.p.RefundID, err)
		}
	}
	for _, r := range c.rrn {
		if _, err := tx.Exec(ctx, `update refunds set rrn = $2 where refund_id = $1::uuid`, r[0], r[1]); err != nil {
			return fmt.Errorf("record rrn of refund %s: %w", r[0], err)
		}
	}
	for _, r := range c.closed {
		tag, err := tx.Exec(ctx, `
			update refunds set status = $2, failure_code = $3, updated_at = $4, tx_id = $5::bigint::text::xid8, global_position = $6
			where refund_id = $1::uuid and status = 'PENDING'`,
			r.id, r.status, r.code, r.e.CreatedAt, txID(r.e), r.e.Position.GlobalPosition)
		if err != nil {
			return fmt.Errorf("close refund %s: %w", r.id, err)
		}
		if tag.RowsAffected() != 1 {
			return applyError(r.e, fmt.Errorf("ordering violation: refund %s is not pending", r.id))
		}
	}
	for pid, amount := range c.refunded {
		if _, err := tx.Exec(ctx, `update payments set refunded_paise = refunded_paise + $2 where payment_id = $1::uuid`,
			pid, amount); err != nil {
			return fmt.Errorf("record refunded amount of payment %s: %w", pid, err)
		}
	}
	return nil
}
