// Package postgres reads the projection tables (never the event log) and listens for the consumers'
// notifications.
package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/query-service/internal/app"
	"upi/shared/contract"
	"upi/shared/contract/projection"
	"upi/shared/platform/eventstore"
)

// Reader implements app.Reader. Each read is ONE statement joining the projection's checkpoint row with
// the data, so both come from one snapshot without a transaction.
type Reader struct{ pool *pgxpool.Pool }

// NewReader returns a reader on pool, whose answers show sealed personal data opened, or erased
// (opened.go).
func NewReader(pool *pgxpool.Pool) *OpeningReader { return &OpeningReader{Reader: &Reader{pool: pool}} }

// position builds a Position from nullable columns.
func position(tx, gp *int64) eventstore.Position {
	if tx == nil || gp == nil {
		return eventstore.Start
	}
	return eventstore.Position{TxID: uint64(*tx), GlobalPosition: *gp}
}

// Account implements app.Reader.
func (r *Reader) Account(ctx context.Context, vpa string) (app.Account, bool, eventstore.Position, error) {
	var (
		cpTx, cpPos            int64
		v, owner, holder, kind *string
		mcc                    *string
		balance, rowTx, rowPos *int64
		createdAt, updatedAt   *time.Time
		closed                 *bool
	)
	err := r.pool.QueryRow(ctx, `
		select c.tx_id::text::bigint, c.global_position,
		       a.vpa, a.owner_client_id, a.holder_name, a.type, a.mcc, a.balance_paise, a.created_at, a.updated_at,
		       a.tx_id::text::bigint, a.global_position, a.closed_at is not null
		from projection_checkpoints c left join accounts a on a.vpa = $2
		where c.name = $1`, projection.Accounts, vpa).
		Scan(&cpTx, &cpPos, &v, &owner, &holder, &kind, &mcc, &balance, &createdAt, &updatedAt, &rowTx, &rowPos, &closed)
	cp := eventstore.Position{TxID: uint64(cpTx), GlobalPosition: cpPos}
	if err != nil {
		return app.Account{}, false, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read account %s: %w", vpa, err))
	}
	if v == nil {
		return app.Account{}, false, cp, nil
	}
	status := contract.AccountStatusActive
	if *closed {
		status = contract.AccountStatusClosed
	}
	return app.Account{Owner: *owner, Account: contract.Account{
		VPA: *v, HolderName: *holder, Type: *kind, MCC: deref(mcc), Status: status, BalancePaise: *balance,
		Currency: "INR", CreatedAt: contract.Time(*createdAt), UpdatedAt: contract.Time(*updatedAt),
		Position: position(rowTx, rowPos).Token(),
	}}, true, cp, nil
}

// Transactions implements app.Reader.
func (r *Reader) Transactions(ctx context.Context, vpa string, beforeVersion, limit int) (string, bool, []app.VersionedTransaction, eventstore.Position, error) {
	if beforeVersion <= 0 {
		beforeVersion = 1 << 30
	}
	rows, err := r.pool.Query(ctx, `
		select c.tx_id::text::bigint, c.global_position, a.owner_client_id,
		       t.version, t.kind, t.amount_paise, t.balance_after_paise, t.payment_id::text, t.counterparty_vpa,
		       t.reference, t.rrn, t.at, t.tx_id::text::bigint, t.global_position, t.refund_id::text,
		       t.withdrawal_id::text
		from projection_checkpoints c
		left join accounts a on a.vpa = $2
		left join lateral (
			select * from account_transactions t
			where t.vpa = a.vpa and t.version < $3
			order by t.version desc limit $4) t on true
		where c.name = $1
		order by t.version desc`, projection.Accounts, vpa, beforeVersion, limit)
	if err != nil {
		return "", false, nil, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read transactions of %s: %w", vpa, err))
	}
	defer rows.Close()
	var (
		cp    eventstore.Position
		owner *string
		items []app.VersionedTransaction
	)
	for rows.Next() {
		var (
			cpTx, cpPos                         int64
			version                             *int
			kind, paymentID, counterparty, ref  *string
			rrn, refundID, withdrawalID         *string
			amount, balanceAfter, rowTx, rowPos *int64
			at                                  *time.Time
		)
		if err := rows.Scan(&cpTx, &cpPos, &owner, &version, &kind, &amount, &balanceAfter, &paymentID,
			&counterparty, &ref, &rrn, &at, &rowTx, &rowPos, &refundID, &withdrawalID); err != nil {
			return "", false, nil, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read transactions of %s: %w", vpa, err))
		}
		cp = eventstore.Position{TxID: uint64(cpTx), GlobalPosition: cpPos}
		if version == nil {
			continue // the account has no movement (in this page)
		}
		items = append(items, app.VersionedTransaction{Version: *version, Transaction: contract.Transaction{
			Kind: *kind, AmountPaise: *amount, BalanceAfterPaise: *balanceAfter,
			PaymentID: deref(paymentID), RefundID: deref(refundID), WithdrawalID: deref(withdrawalID),
			CounterpartyVPA: deref(counterparty), Reference: deref(ref), RRN: deref(rrn),
			At: contract.Time(*at), Position: position(rowTx, rowPos).Token(),
		}})
	}
	if err := rows.Err(); err != nil {
		return "", false, nil, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read transactions of %s: %w", vpa, err))
	}
	if owner == nil {
		return "", false, nil, cp, nil
	}
	return *owner, true, items, cp, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

const paymentColumns = `p.payment_id::text, p.payer_vpa, p.payee_vpa, p.amount_paise, p.note, p.status, p.failure_code,
	p.created_at, p.updated_at, p.tx_id::text::bigint, p.global_position,
	coalesce(p.payer_owner, ''), coalesce(p.payee_owner, ''),
	coalesce(p.upi_txn_id, 'UPI' || replace(p.payment_id::text, '-', '')), p.rrn, p.refunded_paise`

type paymentRow struct {
	id, payer, payee, note, status, code, payerOwner, payeeOwner *string
	upi, rrn                                                     *string
	amount, rowTx, rowPos, refunded                              *int64
	createdAt, updatedAt                                         *time.Time
}

func (p *paymentRow) dest() []any {
	return []any{&p.id, &p.payer, &p.payee, &p.amount, &p.note, &p.status, &p.code, &p.createdAt, &p.updatedAt,
		&p.rowTx, &p.rowPos, &p.payerOwner, &p.payeeOwner, &p.upi, &p.rrn, &p.refunded}
}

func (p *paymentRow) payment() (app.Payment, bool) {
	if p.id == nil {
		return app.Payment{}, false
	}
	return app.Payment{PayerOwner: *p.payerOwner, PayeeOwner: *p.payeeOwner, Payment: contract.Payment{
		PaymentID: *p.id, UPITxnID: deref(p.upi), PayerVPA: *p.payer, PayeeVPA: *p.payee, AmountPaise: *p.amount,
		Currency: "INR", Note: *p.note, Status: *p.status, FailureCode: p.code, NPCICode: contract.NPCICode(p.code),
		RRN: deref(p.rrn), RefundedPaise: *p.refunded, CreatedAt: contract.Time(*p.createdAt),
		UpdatedAt: contract.Time(*p.updatedAt), Position: position(p.rowTx, p.rowPos).Token(),
	}}, true
}

// Refund implements app.Reader.
func (r *Reader) Refund(ctx context.Context, id uuid.UUID) (app.Refund, bool, eventstore.Position, error) {
	var cpTx, cpPos int64
	var rid, pid, upi, reason, status, payerOwner, payeeOwner, code, rrn *string
	var amount, rowTx, rowPos *int64
	var createdAt, updatedAt *time.Time
	err := r.pool.QueryRow(ctx, `
		select c.tx_id::text::bigint, c.global_position, f.refund_id::text, f.payment_id::text, f.upi_txn_id,
			f.amount_paise, f.reason, f.status, f.failure_code, f.rrn, f.created_at, f.updated_at,
			f.tx_id::text::bigint, f.global_position, coalesce(f.payer_owner, ''), coalesce(f.payee_owner, '')
		from projection_checkpoints c left join refunds f on f.refund_id = $2
		where c.name = $1`, projection.Payments, id).Scan(&cpTx, &cpPos, &rid, &pid, &upi, &amount, &reason,
		&status, &code, &rrn, &createdAt, &updatedAt, &rowTx, &rowPos, &payerOwner, &payeeOwner)
	cp := eventstore.Position{TxID: uint64(cpTx), GlobalPosition: cpPos}
	if err != nil {
		return app.Refund{}, false, eventstore.Start, fmt.Errorf("read refund %s: %w", id, err)
	}
	if rid == nil {
		return app.Refund{}, false, cp, nil
	}
	return app.Refund{PayerOwner: *payerOwner, PayeeOwner: *payeeOwner, Refund: contract.Refund{
		RefundID: *rid, PaymentID: *pid, UPITxnID: *upi, AmountPaise: *amount, Reason: *reason, Status: *status,
		FailureCode: code, NPCICode: contract.NPCICode(code), RRN: deref(rrn), CreatedAt: contract.Time(*createdAt),
		UpdatedAt: contract.Time(*updatedAt), Position: position(rowTx, rowPos).Token(),
	}}, true, cp, nil
}

// Payment implements app.Reader.
func (r *Reader) Payment(ctx context.Context, id uuid.UUID) (app.Payment, bool, eventstore.Position, error) {
	var cpTx, cpPos int64
	var row paymentRow
	err := r.pool.QueryRow(ctx, `
		select c.tx_id::text::bigint, c.global_position, `+paymentColumns+`
		from projection_checkpoints c left join payments p on p.payment_id = $2
		where c.name = $1`, projection.Payments, id).Scan(append([]any{&cpTx, &cpPos}, row.dest()...)...)
	if err != nil {
		return app.Payment{}, false, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read payment %s: %w", id, err))
	}
	p, found := row.payment()
	return p, found, eventstore.Position{TxID: uint64(cpTx), GlobalPosition: cpPos}, nil
}

// PaymentByRRN implements app.Reader.
func (r *Reader) PaymentByRRN(ctx context.Context, rrn string) (app.Payment, bool, eventstore.Position, error) {
	var cpTx, cpPos int64
	var row paymentRow
	err := r.pool.QueryRow(ctx, `
		select c.tx_id::text::bigint, c.global_position, `+paymentColumns+`
		from projection_checkpoints c left join payments p on p.rrn = $2
		where c.name = $1
		limit 1`, projection.Payments, rrn).Scan(append([]any{&cpTx, &cpPos}, row.dest()...)...)
	if err != nil {
		return app.Payment{}, false, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read payment of rrn %s: %w", rrn, err))
	}
	p, found := row.payment()
	return p, found, eventstore.Position{TxID: uint64(cpTx), GlobalPosition: cpPos}, nil
}

// VPA implements app.Reader.
func (r *Reader) VPA(ctx context.Context, vpa string) (contract.VPALookup, bool, eventstore.Position, error) {
	var cpTx, cpPos int64
	var v, name, kind, mcc *string
	var closed *bool
	err := r.pool.QueryRow(ctx, `
		select c.tx_id::text::bigint, c.global_position, a.vpa, a.holder_name, a.type, a.mcc, a.closed_at is not null
		from projection_checkpoints c left join accounts a on a.vpa = $2
		where c.name = $1`, projection.Accounts, vpa).Scan(&cpTx, &cpPos, &v, &name, &kind, &mcc, &closed)
	cp := eventstore.Position{TxID: uint64(cpTx), GlobalPosition: cpPos}
	if err != nil {
		return contract.VPALookup{}, false, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("look up vpa %s: %w", vpa, err))
	}
	if v == nil {
		return contract.VPALookup{}, false, cp, nil
	}
	if *closed {
		return contract.VPALookup{}, false, cp, app.ErrAccountClosed
	}
	return contract.VPALookup{VPA: *v, Name: *name, Type: *kind, MCC: deref(mcc)}, true, cp, nil
}

// PaymentEvents implements app.Reader.
func (r *Reader) PaymentEvents(ctx context.Context, id uuid.UUID) (app.Payment, bool, []contract.PaymentEvent, eventstore.Position, error) {
	rows, err := r.pool.Query(ctx, `
		select c.tx_id::text::bigint, c.global_position, `+paymentColumns+`,
		       e.event_type, e.at, e.data, e.tx_id::text::bigint, e.global_position
		from projection_checkpoints c
		left join payments p on p.payment_id = $2
		left join payment_events e on e.payment_id = p.payment_id
		where c.name = $1
		order by e.tx_id, e.global_position`, projection.Payments, id)
	if err != nil {
		return app.Payment{}, false, nil, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read events of payment %s: %w", id, err))
	}
	defer rows.Close()
	var (
		cp    eventstore.Position
		row   paymentRow
		items = []contract.PaymentEvent{}
	)
	for rows.Next() {
		var (
			cpTx, cpPos int64
			eventType   *string
			at          *time.Time
			data        []byte
			evTx, evPos *int64
		)
		dest := append(append([]any{&cpTx, &cpPos}, row.dest()...), &eventType, &at, &data, &evTx, &evPos)
		if err := rows.Scan(dest...); err != nil {
			return app.Payment{}, false, nil, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read events of payment %s: %w", id, err))
		}
		cp = eventstore.Position{TxID: uint64(cpTx), GlobalPosition: cpPos}
		if eventType != nil {
			items = append(items, contract.PaymentEvent{EventType: *eventType, At: contract.Time(*at),
				Position: position(evTx, evPos).Token(), Data: json.RawMessage(data)})
		}
	}
	if err := rows.Err(); err != nil {
		return app.Payment{}, false, nil, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read events of payment %s: %w", id, err))
	}
	p, found := row.payment()
	return p, found, items, cp, nil
}

// readCheckpoints reads every projection's checkpoint.
func readCheckpoints(ctx context.Context, q eventstore.Querier) (map[string]eventstore.Position, error) {
	rows, err := q.Query(ctx, `select name, tx_id::text::bigint, global_position from projection_checkpoints`)
	if err != nil {
		return nil, eventstore.MarkUnavailable(fmt.Errorf("read checkpoints: %w", err))
	}
	defer rows.Close()
	out := map[string]eventstore.Position{}
	for rows.Next() {
		var name string
		var p eventstore.Position
		if err := rows.Scan(&name, &p.TxID, &p.GlobalPosition); err != nil {
			return nil, eventstore.MarkUnavailable(fmt.Errorf("read checkpoints: %w", err))
		}
		out[name] = p
	}
	return out, eventstore.MarkUnavailable(rows.Err())
}

const collectColumns = `k.collect_id::text, k.payee_vpa, k.payer_vpa, k.amount_paise, k.note, k.status,
	k.payment_id::text, k.npci_code, k.expires_at, k.created_at, k.updated_at, k.tx_id::text::bigint,
	k.global_position, coalesce(k.payee_owner, ''), coalesce(k.payer_owner, ''), k.seq`

type collectRow struct {
	id, payee, payer, note, status, paymentID, npci, payeeOwner, payerOwner *string
	amount, rowTx, rowPos, seq                                              *int64
	expiresAt, createdAt, updatedAt                                         *time.Time
}

func (k *collectRow) dest() []any {
	return []any{&k.id, &k.payee, &k.payer, &k.amount, &k.note, &k.status, &k.paymentID, &k.npci, &k.expiresAt,
		&k.createdAt, &k.updatedAt, &k.rowTx, &k.rowPos, &k.payeeOwner, &k.payerOwner, &k.seq}
}

func (k *collectRow) collect() (app.SeqCollect, app.Collect, bool) {
	if k.id == nil {
		return app.SeqCollect{}, app.Collect{}, false
	}
	c := contract.Collect{CollectID: *k.id, PayeeVPA: *k.payee, PayerVPA: *k.payer, AmountPaise: *k.amount,
		Note: *k.note, Status: *k.status, PaymentID: k.paymentID, NPCICode: k.npci,
		ExpiresAt: contract.Time(*k.expiresAt), CreatedAt: contract.Time(*k.createdAt),
		UpdatedAt: contract.Time(*k.updatedAt), Position: position(k.rowTx, k.rowPos).Token()}
	return app.SeqCollect{Collect: c, Seq: int(*k.seq)}, app.Collect{Collect: c, PayeeOwner: *k.payeeOwner,
		PayerOwner: *k.payerOwner}, true
}

// Collect implements app.Reader.
func (r *Reader) Collect(ctx context.Context, id uuid.UUID) (app.Collect, bool, eventstore.Position, error) {
	var cpTx, cpPos int64
	var row collectRow
	err := r.pool.QueryRow(ctx, `
		select c.tx_id::text::bigint, c.global_position, `+collectColumns+`
		from projection_checkpoints c left join collect_requests k on k.collect_id = $2
		where c.name = $1`, projection.Payments, id).Scan(append([]any{&cpTx, &cpPos}, row.dest()...)...)
	cp := eventstore.Position{TxID: uint64(cpTx), GlobalPosition: cpPos}
	if err != nil {
		return app.Collect{}, false, eventstore.Start, fmt.Errorf("read collect request %s: %w", id, err)
	}
	_, c, found := row.collect()
	return c, found, cp, nil
}

// Collects implements app.Reader.
func (r *Reader) Collects(ctx context.Context, payer, status string, beforeSeq, limit int) (string, bool, []app.SeqCollect, eventstore.Position, error) {
	if beforeSeq <= 0 {
		beforeSeq = math.MaxInt64
	}
	rows, err := r.pool.Query(ctx, `
		select c.tx_id::text::bigint, c.global_position, o.owner_client_id, `+collectColumns+`
		from projection_checkpoints c
		left join payment_account_owners o on o.vpa = $2
		left join lateral (
			select * from collect_requests k
			where k.payer_vpa = o.vpa and k.seq < $3 and ($4 = '' or k.status = $4)
			order by k.seq desc limit $5) k on true
		where c.name = $1
		order by k.seq desc`, projection.Payments, payer, int64(beforeSeq), status, limit)
	if err != nil {
		return "", false, nil, eventstore.Start, fmt.Errorf("read collect requests of %s: %w", payer, err)
	}
	defer rows.Close()
	var (
		cp    eventstore.Position
		owner *string
		items []app.SeqCollect
	)
	for rows.Next() {
		var cpTx, cpPos int64
		var row collectRow
		if err := rows.Scan(append([]any{&cpTx, &cpPos, &owner}, row.dest()...)...); err != nil {
			return "", false, nil, eventstore.Start, fmt.Errorf("read collect requests of %s: %w", payer, err)
		}
		cp = eventstore.Position{TxID: uint64(cpTx), GlobalPosition: cpPos}
		if item, _, ok := row.collect(); ok {
			items = append(items, item)
		}
	}
	if err := rows.Err(); err != nil {
		return "", false, nil, eventstore.Start, fmt.Errorf("read collect requests of %s: %w", payer, err)
	}
	if owner == nil {
		return "", false, nil, cp, nil
	}
	return *owner, true, items, cp, nil
}

// Withdrawal implements app.Reader.
func (r *Reader) Withdrawal(ctx context.Context, id uuid.UUID) (app.Withdrawal, bool, eventstore.Position, error) {
	var cpTx, cpPos int64
	var wid, vpa, owner, reference, status, code, rrn *string
	var amount, rowTx, rowPos *int64
	var createdAt, updatedAt *time.Time
	err := r.pool.QueryRow(ctx, `
		select c.tx_id::text::bigint, c.global_position, w.withdrawal_id::text, w.vpa, w.owner_client_id,
			w.amount_paise, w.reference, w.status, w.failure_code, w.rrn, w.created_at, w.updated_at,
			w.tx_id::text::bigint, w.global_position
		from projection_checkpoints c left join withdrawals w on w.withdrawal_id = $2
		where c.name = $1`, projection.Accounts, id).Scan(&cpTx, &cpPos, &wid, &vpa, &owner, &amount, &reference,
		&status, &code, &rrn, &createdAt, &updatedAt, &rowTx, &rowPos)
	if err != nil {
		return app.Withdrawal{}, false, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read withdrawal %s: %w", id, err))
	}
	cp := eventstore.Position{TxID: uint64(cpTx), GlobalPosition: cpPos}
	if wid == nil {
		return app.Withdrawal{}, false, cp, nil
	}
	return app.Withdrawal{Owner: *owner, Withdrawal: contract.Withdrawal{
		WithdrawalID: *wid, VPA: *vpa, AmountPaise: *amount, Reference: *reference, Status: *status,
		FailureCode: code, NPCICode: contract.NPCICode(code), RRN: deref(rrn), CreatedAt: contract.Time(*createdAt),
		UpdatedAt: contract.Time(*updatedAt), Position: position(rowTx, rowPos).Token(),
	}}, true, cp, nil
}

// SettlementAccounts implements app.Reader: each bank's shards summed in one statement, with the position
// of the bank's latest move.
func (r *Reader) SettlementAccounts(ctx context.Context) ([]contract.SettlementAccount, eventstore.Position, error) {
	rows, err := r.pool.Query(ctx, `
		select c.tx_id::text::bigint, c.global_position, s.bank, s.balance, s.deposits, s.withdrawals, s.updated_at,
			s.tx, s.gp
		from projection_checkpoints c
		left join lateral (
			select bank, sum(balance_paise)::bigint as balance, sum(deposits)::bigint as deposits,
				sum(withdrawals)::bigint as withdrawals, max(updated_at) as updated_at,
				(array_agg(tx_id::text::bigint order by tx_id desc, global_position desc))[1] as tx,
				(array_agg(global_position order by tx_id desc, global_position desc))[1] as gp
			from settlement_accounts group by bank) s on true
		where c.name = $1
		order by s.bank`, projection.Accounts)
	if err != nil {
		return nil, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read settlement accounts: %w", err))
	}
	defer rows.Close()
	var (
		cp    eventstore.Position
		items []contract.SettlementAccount
	)
	for rows.Next() {
		var cpTx, cpPos int64
		var bank *string
		var balance, deposits, withdrawals, rowTx, rowPos *int64
		var updatedAt *time.Time
		if err := rows.Scan(&cpTx, &cpPos, &bank, &balance, &deposits, &withdrawals, &updatedAt, &rowTx, &rowPos); err != nil {
			return nil, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read settlement accounts: %w", err))
		}
		cp = eventstore.Position{TxID: uint64(cpTx), GlobalPosition: cpPos}
		if bank == nil {
			continue // no bank has moved money yet
		}
		items = append(items, contract.SettlementAccount{Bank: *bank, BalancePaise: *balance, Deposits: *deposits,
			Withdrawals: *withdrawals, UpdatedAt: contract.Time(*updatedAt), Position: position(rowTx, rowPos).Token()})
	}
	if err := rows.Err(); err != nil {
		return nil, eventstore.Start, eventstore.MarkUnavailable(fmt.Errorf("read settlement accounts: %w", err))
	}
	return items, cp, nil
}
