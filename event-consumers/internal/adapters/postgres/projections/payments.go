package projections

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"upi/event-consumers/internal/runner"
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

// PartitionKey implements runner.Partitioned. Every row of the projection belongs to one payment or to one
// collect request, except the account owners: a payment's events, its refunds' events and the account
// events that name it (debits, credits, reversals, rejections) go by the payment's id, so that its row,
// its refunds' rows (and the refunded total on its row) and its audit trail are written by one partition,
// in log order; a collect request's events go by the request's id (its approval only names the payment it
// started, in the request's own row). An account's opening goes to every partition (AllPartitions): it is
// the only writer of its owner's row, which the payments, refunds and collect requests of every partition
// read when they are recorded, so each partition records it (idempotently) before any of its events that
// read it, as the log has it. Whatever else the projection ignores goes by its aggregate id.
func (Payments) PartitionKey(e eventstore.Event) string {
	p, err := eventstore.PayloadOf(e, events.Decode)
	if err != nil {
		return e.AggregateID // Apply reports it, in the partition of its stream
	}
	switch p := p.(type) {
	case events.AccountOpenedV1:
		return runner.AllPartitions
	case events.AccountDebitedV1:
		return p.PaymentID
	case events.DebitRejectedV1:
		return p.PaymentID
	case events.AccountCreditedV1:
		return p.PaymentID
	case events.DebitReversedV1:
		return p.PaymentID
	case events.RefundReservedV1:
		return p.PaymentID
	case events.RefundSettledV1:
		return p.PaymentID
	case events.RefundCompletedV1:
		return p.PaymentID
	case events.RefundFailedV1:
		return p.PaymentID
	}
	if t, ok := events.Refund(p); ok {
		return t.PaymentID
	}
	return e.AggregateID
}

// Apply implements runner.Projection. It notifies projection.PaymentSettledChannel with the payments that
// became terminal, so that long-polling readers answer as soon as the batch commits.
func (Payments) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	b := paymentsBatch{closing: map[string]eventstore.Event{}, refunds: refundChanges{refunded: map[string]int64{}}}
	for _, e := range batch {
		if err := b.add(e); err != nil {
			return err
		}
	}
	return b.write(ctx, tx)
}

// paymentsBatch is what a batch does to the payments projection's tables, gathered event by event and
// written set-wise.
type paymentsBatch struct {
	owners    ownerRows
	initiated initiationRows
	debits    debitRows
	closed    closingRows
	trail     trailRows
	refunds   refundChanges
	collects  collectChanges
	// closing is the event that closes each payment the batch closes; settled, those payments in order.
	closing map[string]eventstore.Event
	settled []string
}

// add gathers one event's effect. Every event of a payment or a refund joins its payment's audit trail.
func (b *paymentsBatch) add(e eventstore.Event) error {
	p, err := eventstore.PayloadOf(e, events.Decode)
	if err != nil {
		return applyError(e, err)
	}
	if events.Merchant(p) {
		return nil // QR codes and mandates: the merchant projection's
	}
	switch p := p.(type) {
	case events.AccountOpenedV1:
		b.owners.add(e, p)
	case events.FundsDepositedV1, events.FundsWithdrawnV1, events.WithdrawalRejectedV1,
		events.SettlementDebitedV1, events.SettlementCreditedV1, events.AccountErasedV1:
		// no payment involved: money entering or leaving the system (the accounts projection's)
	case events.AccountDebitedV1:
		b.debited(e, p)
	case events.DebitRejectedV1:
		b.trail.add(e, p.PaymentID)
	case events.AccountCreditedV1:
		b.trail.add(e, p.PaymentID)
	case events.DebitReversedV1:
		b.trail.add(e, p.PaymentID)
	case events.PaymentInitiatedV1:
		return b.paymentInitiated(e, p)
	case events.PaymentCompletedV1:
		return b.paymentClosed(e, contract.PaymentCompleted, nil)
	case events.PaymentFailedV1:
		return b.paymentClosed(e, contract.PaymentFailed, &p.Code)
	case events.RefundReservedV1:
		b.refunds.reserved = append(b.refunds.reserved, refundRow{e: e, p: p})
		b.trail.add(e, p.PaymentID)
	case events.RefundDebitedV1:
		b.refunds.rrn = append(b.refunds.rrn, [2]string{p.RefundID, p.RRN})
		b.trail.add(e, p.PaymentID)
	case events.RefundInitiatedV1, events.RefundDebitRejectedV1, events.RefundCreditedV1, events.RefundDebitReversedV1:
		t, _ := events.Refund(p)
		b.trail.add(e, t.PaymentID)
	case events.RefundCompletedV1:
		b.refundClosed(e, p.PaymentID, refundClose{e: e, id: p.RefundID, status: contract.PaymentCompleted})
	case events.RefundFailedV1:
		code := p.Code
		b.refundClosed(e, p.PaymentID, refundClose{e: e, id: p.RefundID, status: contract.PaymentFailed, code: &code})
	case events.RefundSettledV1:
		b.refundSettled(e, p)
	case events.CollectRequestedV1, events.CollectApprovedV1, events.CollectDeclinedV1, events.CollectExpiredV1:
		b.collects = append(b.collects, collectChange{e: e, p: p})
	case events.ComplaintRaisedV1, events.ComplaintResolvedV1, events.ComplaintAcceptedV1, events.ChargebackRaisedV1,
		events.ComplaintRefundRetriedV1:
		// the complaints projection's
	default:
		return applyError(e, fmt.Errorf("unhandled event type %s", e.Type))
	}
	return nil
}

// debited gives the payment the debit's RRN.
// A payment initiated in the same batch gets it in its new row.
func (b *paymentsBatch) debited(e eventstore.Event, p events.AccountDebitedV1) {
	b.trail.add(e, p.PaymentID)
	if p.RRN == "" {
		return
	}
	if i, ok := b.initiated.row[p.PaymentID]; ok {
		b.initiated.rrn[i] = &p.RRN
		return
	}
	b.debits.add(p.PaymentID, p.RRN)
}

// paymentInitiated opens a payment's row; its event must open its stream.
func (b *paymentsBatch) paymentInitiated(e eventstore.Event, p events.PaymentInitiatedV1) error {
	if e.Version != 1 {
		return applyError(e, fmt.Errorf("opens a stream at version %d", e.Version))
	}
	b.initiated.add(e, p)
	b.trail.add(e, e.AggregateID)
	return nil
}

// paymentClosed completes or fails a payment (code is nil for a completion); a payment closes once.
// A payment initiated in the same batch is closed in its new row, which is then written once.
func (b *paymentsBatch) paymentClosed(e eventstore.Event, status string, code *string) error {
	b.trail.add(e, e.AggregateID)
	if prev, dup := b.closing[e.AggregateID]; dup {
		return applyError(e, fmt.Errorf("ordering violation: payment already closed by %s", prev.ID))
	}
	if i, ok := b.initiated.row[e.AggregateID]; ok {
		if e.Version != 2 {
			return applyError(e, fmt.Errorf("ordering violation: the payment is %s at version %d", contract.PaymentPending, 1))
		}
		b.initiated.close(i, e, status, code)
	} else {
		b.closed.add(e, status, code, b.debits.take(e.AggregateID))
	}
	b.closing[e.AggregateID] = e
	b.settled = append(b.settled, e.AggregateID)
	return nil
}

// refundClosed completes or fails a refund of paymentID.
func (b *paymentsBatch) refundClosed(e eventstore.Event, paymentID string, c refundClose) {
	b.refunds.closed = append(b.refunds.closed, c)
	b.trail.add(e, paymentID)
}

// refundSettled adds a completed refund's amount to its payment's refunded total.
func (b *paymentsBatch) refundSettled(e eventstore.Event, p events.RefundSettledV1) {
	if p.Status == events.RefundStatusCompleted {
		b.refunds.refunded[p.PaymentID] += p.AmountPaise
	}
	b.trail.add(e, p.PaymentID)
}

// write writes the batch's effect, table by table, then announces the payments it settled.
func (b *paymentsBatch) write(ctx context.Context, tx pgx.Tx) error {
	for _, write := range []func(context.Context, pgx.Tx) error{
		b.owners.write, b.initiated.write, b.debits.write, b.writeClosed, b.refunds.apply, b.collects.apply,
		b.trail.write,
	} {
		if err := write(ctx, tx); err != nil {
			return err
		}
	}
	return notifySettled(ctx, tx, b.settled)
}

// writeClosed closes the payments initiated before the batch, each guarded by its version and pending
// status, and gives those debited in the batch their RRN.
func (b *paymentsBatch) writeClosed(ctx context.Context, tx pgx.Tx) error {
	closed := b.closed
	if len(closed.id) == 0 {
		return nil
	}
	tag, err := tx.Exec(ctx, `
		update payments p
		set status = u.status, failure_code = u.code, updated_at = u.at, version = u.version,
		    tx_id = u.txid::text::xid8, global_position = u.gp, rrn = coalesce(u.rrn, p.rrn)
		from unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[], $7::bigint[],
			$8::text[]) as u(id, version, status, code, at, txid, gp, rrn)
		where p.payment_id = u.id::uuid and p.version = u.version - 1 and p.status = 'PENDING'`,
		closed.id, closed.version, closed.status, closed.code, closed.at, closed.tx, closed.gp, closed.rrn)
	if err != nil {
		return fmt.Errorf("close payments: %w", err)
	}
	if int(tag.RowsAffected()) != len(closed.id) {
		updated := make(map[string]eventstore.Event, len(closed.id))
		for _, id := range closed.id {
			updated[id] = b.closing[id]
		}
		return closeViolation(ctx, tx, updated)
	}
	return nil
}

// notifySettled announces the payments that became terminal, in NOTIFY payloads of at most 7000 bytes.
func notifySettled(ctx context.Context, tx pgx.Tx, settled []string) error {
	for _, ids := range chunks(settled, 7000) {
		if _, err := tx.Exec(ctx, `select pg_notify($1, $2)`, projection.PaymentSettledChannel, ids); err != nil {
			return fmt.Errorf("notify settled payments: %w", err)
		}
	}
	return nil
}

// ownerRows are the account owners a batch records, column by column for unnest.
type ownerRows struct{ vpa, owner []string }

func (r *ownerRows) add(e eventstore.Event, p events.AccountOpenedV1) {
	r.vpa, r.owner = append(r.vpa, e.AggregateID), append(r.owner, p.OwnerClientID)
}

func (r *ownerRows) write(ctx context.Context, tx pgx.Tx) error {
	if len(r.vpa) == 0 {
		return nil
	}
	// With partitions, every partition records the opening (Payments.PartitionKey): the first does.
	if _, err := tx.Exec(ctx, `insert into payment_account_owners (vpa, owner_client_id)
		select * from unnest($1::text[], $2::text[]) on conflict (vpa) do nothing`, r.vpa, r.owner); err != nil {
		return fmt.Errorf("record account owners: %w", err)
	}
	return nil
}

// initiationRows are the payments a batch initiates, each as the batch leaves it: pending, or given its
// RRN and closed by later events of the same batch.
type initiationRows struct {
	id, payer, payee []string
	amount           []int64
	note, client     []string
	upi              []string
	ref, mandate     []string // merchant_reference and mandate_id ("" for none)
	stamps                    // of the initiation: created_at
	// The row as the batch leaves it: status, failure code, RRN, version, and the stamps of its last
	// change (updated_at, tx_id, global_position).
	status  []string
	code    []*string
	rrn     []*string
	version []int32
	last    stamps
	// row is the index of each payment's row.
	row map[string]int
}

// close closes the payment of row i with e.
func (r *initiationRows) close(i int, e eventstore.Event, status string, code *string) {
	r.status[i], r.code[i], r.version[i] = status, code, int32(e.Version)
	r.last.at[i], r.last.tx[i], r.last.gp[i] = e.CreatedAt, txID(e), e.Position.GlobalPosition
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
	r.ref, r.mandate = append(r.ref, p.MerchantReference), append(r.mandate, p.MandateID)
	r.amount, r.note, r.client = append(r.amount, p.AmountPaise), append(r.note, p.Note), append(r.client, p.ClientID)
	r.stamps.add(e)
	if r.row == nil {
		r.row = map[string]int{}
	}
	r.row[e.AggregateID] = len(r.id) - 1
	r.status, r.code, r.rrn = append(r.status, contract.PaymentPending), append(r.code, nil), append(r.rrn, nil)
	r.version = append(r.version, 1)
	r.last.add(e)
}

// write inserts the payments, with their parties' owners as the projection knows them.
func (r *initiationRows) write(ctx context.Context, tx pgx.Tx) error {
	if len(r.id) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `
		insert into payments (payment_id, payer_vpa, payee_vpa, amount_paise, note, client_id, payer_owner,
			payee_owner, status, failure_code, rrn, created_at, updated_at, version, tx_id, global_position,
			upi_txn_id, merchant_reference, mandate_id)
		select id::uuid, payer, payee, amount, note, client, po.owner_client_id, pe.owner_client_id,
			status, code, rrn, created, updated, version, txid::text::xid8, gp, upi, nullif(ref, ''),
			nullif(mandate, '')::uuid
		from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
			$7::timestamptz[], $8::timestamptz[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::text[],
			$14::text[], $15::text[], $16::text[], $17::int[])
			as u(id, payer, payee, amount, note, client, created, updated, txid, gp, upi, ref, mandate, status, code,
				rrn, version)
		left join payment_account_owners po on po.vpa = u.payer
		left join payment_account_owners pe on pe.vpa = u.payee`,
		r.id, r.payer, r.payee, r.amount, r.note, r.client, r.at, r.last.at, r.last.tx, r.last.gp, r.upi, r.ref,
		r.mandate, r.status, r.code, r.rrn, r.version); err != nil {
		return fmt.Errorf("record initiated payments: %w", err)
	}
	return nil
}

// debitRows are the RRNs a batch's debits give their payments initiated before it, by payment, in order;
// a payment closed later in the batch takes its RRN into its close (take).
type debitRows struct {
	order []string
	rrn   map[string]string
}

func (r *debitRows) add(payment, rrn string) {
	if r.rrn == nil {
		r.rrn = map[string]string{}
	}
	r.order, r.rrn[payment] = append(r.order, payment), rrn
}

// take removes payment's RRN from the rows and returns it (nil when the batch gave it none).
func (r *debitRows) take(payment string) *string {
	rrn, ok := r.rrn[payment]
	if !ok {
		return nil
	}
	delete(r.rrn, payment)
	return &rrn
}

// write gives each debited payment its RRN. A debit follows its payment's initiation in the log (the
// workflow debits only an initiated payment), so the row is there, in this batch or an earlier one.
func (r *debitRows) write(ctx context.Context, tx pgx.Tx) error {
	payment := make([]string, 0, len(r.rrn))
	rrn := make([]string, 0, len(r.rrn))
	for _, id := range r.order {
		if v, ok := r.rrn[id]; ok {
			payment, rrn = append(payment, id), append(rrn, v)
		}
	}
	if len(payment) == 0 {
		return nil
	}
	tag, err := tx.Exec(ctx, `
		update payments p set rrn = u.rrn
		from unnest($1::text[], $2::text[]) as u(id, rrn)
		where p.payment_id = u.id::uuid`, payment, rrn)
	if err != nil {
		return fmt.Errorf("record rrns: %w", err)
	}
	if int(tag.RowsAffected()) != len(payment) {
		return fmt.Errorf("record rrns: %d of %d debited payments found", tag.RowsAffected(), len(payment))
	}
	return nil
}

// closingRows are the payments a batch completes or fails; code is nil for a completion, rrn for a
// payment not debited in the batch.
type closingRows struct {
	id      []string
	version []int32
	status  []string
	code    []*string
	rrn     []*string
	stamps
}

func (r *closingRows) add(e eventstore.Event, status string, code, rrn *string) {
	r.id, r.version, r.status, r.code = append(r.id, e.AggregateID), append(r.version, int32(e.Version)), append(r.status, status), append(r.code, code)
	r.rrn = append(r.rrn, rrn)
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

// write appends the entries to the payments' audit trails.
func (r *trailRows) write(ctx context.Context, tx pgx.Tx) error {
	if len(r.id) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `
		insert into payment_events (event_id, payment_id, event_type, at, data, tx_id, global_position)
		select id, payment::uuid, typ, at, data::jsonb, txid::text::xid8, gp
		from unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::bigint[], $7::bigint[])
			as u(id, payment, typ, at, data, txid, gp)`,
		r.id, r.payment, r.typ, r.at, r.data, r.tx, r.gp); err != nil {
		return fmt.Errorf("record payment audit trail: %w", err)
	}
	return nil
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
