// Package projections builds the read models the query service serves, one projection per set of
// tables (db/migrations/00003_projections.sql). A batch is applied set-wise, a few statements whatever its
// size, inside the runner's transaction, and every event is checked against the row it changes: an
// account's or payment's events must continue its stream version by version, and the balances the
// projection computes must equal the balances the events recorded. A mismatch is an error, never
// silently applied.
package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/projection"
	"upi/shared/platform/eventstore"
)

// Accounts is the "accounts" projection: accounts and their money movements, the withdrawals, and the
// banks' settlement accounts (the other side of every deposit and withdrawal, db/migrations/00012).
type Accounts struct{}

// Name implements runner.Projection.
func (Accounts) Name() string { return projection.Accounts }

// Tables implements runner.Projection.
func (Accounts) Tables() []string {
	return []string{"accounts", "account_transactions", "withdrawals", "settlement_accounts"}
}

// Uses implements runner.Selective: the accounts' own events and the settlement shards' events.
func (Accounts) Uses(e eventstore.Event) bool {
	return e.AggregateType == events.AggregateAccount || e.AggregateType == events.AggregateSettlement
}

// PartitionKey implements runner.Partitioned: the aggregate id. Every row the projection writes is one
// account's (its row, its movements, its withdrawals) or one settlement shard's, written by that stream's
// events alone, and only a stream's own order matters.
func (Accounts) PartitionKey(e eventstore.Event) string { return e.AggregateID }

// accountChange is the effect of a batch's events on one existing account: its events in order, each with
// the change it made to the balance and the balance it recorded. The rest (the batch's first and last
// event, its net change) is derived from them.
type accountChange []balanceStep

// balanceStep is one event's effect on an account's balance.
type balanceStep struct {
	e     eventstore.Event
	delta int64 // the change to the balance
	after int64 // the balance the event recorded
}

func (c accountChange) first() eventstore.Event { return c[0].e }
func (c accountChange) last() eventstore.Event  { return c[len(c)-1].e }

// delta is the net change of the batch to the account's balance.
func (c accountChange) delta() int64 {
	var d int64
	for _, s := range c {
		d += s.delta
	}
	return d
}

// openingRows are the accounts a batch opens, column by column for unnest.
type openingRows struct {
	vpa, owner, holder, kind []string
	mcc                      []*string
	stamps
}

func (r *openingRows) add(e eventstore.Event, p events.AccountOpenedV1) {
	r.vpa, r.owner, r.holder = append(r.vpa, e.AggregateID), append(r.owner, p.OwnerClientID), append(r.holder, p.HolderName)
	var mcc *string
	if p.MCC != "" {
		mcc = &p.MCC
	}
	r.kind, r.mcc = append(r.kind, p.Kind()), append(r.mcc, mcc)
	r.stamps.add(e)
}

// movementRows are the money movements of a batch, column by column for unnest.
type movementRows struct {
	vpa                              []string
	version                          []int32
	kind                             []string
	amount, after                    []int64
	payment, counterparty, reference []*string
	rrn                              []*string
	refund, withdrawal               []*string
	stamps
}

func (r *movementRows) add(e eventstore.Event, kind string, amount, after int64, payment, counterparty, reference *string) {
	r.vpa, r.version, r.kind = append(r.vpa, e.AggregateID), append(r.version, int32(e.Version)), append(r.kind, kind)
	r.amount, r.after = append(r.amount, amount), append(r.after, after)
	r.payment, r.counterparty, r.reference = append(r.payment, payment), append(r.counterparty, counterparty), append(r.reference, reference)
	r.rrn, r.refund, r.withdrawal = append(r.rrn, nil), append(r.refund, nil), append(r.withdrawal, nil)
	r.stamps.add(e)
}

// withRefund sets the refund of the movement added last.
func (r *movementRows) withRefund(id string) {
	r.refund[len(r.refund)-1] = &id
}

// withWithdrawal sets the withdrawal of the movement added last.
func (r *movementRows) withWithdrawal(id string) {
	r.withdrawal[len(r.withdrawal)-1] = &id
}

// withRRN sets the RRN of the movement added last ("" leaves it absent).
func (r *movementRows) withRRN(rrn string) {
	if rrn != "" {
		r.rrn[len(r.rrn)-1] = &rrn
	}
}

// Apply implements runner.Projection.
func (a Accounts) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	var opens openingRows
	var moves movementRows
	var drawn withdrawalRows
	var closed closedRows
	changes := map[string]accountChange{}
	var order []string
	shards := streamChanges{changes: map[string]accountChange{}}
	for _, e := range batch {
		if !a.Uses(e) {
			continue
		}
		p, err := eventstore.PayloadOf(e, events.Decode)
		if err != nil {
			return applyError(e, err)
		}
		if e.AggregateType == events.AggregateSettlement {
			if err := shards.add(e, p); err != nil {
				return err
			}
			continue
		}
		var delta, after int64
		switch p := p.(type) {
		case events.AccountOpenedV1:
			if e.Version != 1 {
				return applyError(e, fmt.Errorf("opens a stream at version %d", e.Version))
			}
			opens.add(e, p)
			continue
		case events.FundsDepositedV1:
			delta, after = p.AmountPaise, p.BalanceAfterPaise
			moves.add(e, contract.KindDeposit, p.AmountPaise, after, nil, nil, &p.Reference)
		case events.AccountDebitedV1:
			delta, after = -p.AmountPaise, p.BalanceAfterPaise
			moves.add(e, contract.KindDebit, p.AmountPaise, after, &p.PaymentID, &p.CounterpartyVPA, nil)
			moves.withRRN(p.RRN)
		case events.DebitRejectedV1:
			delta, after = 0, p.BalancePaise // no money moved: no movement row, only the version
		case events.AccountCreditedV1:
			delta, after = p.AmountPaise, p.BalanceAfterPaise
			moves.add(e, contract.KindCredit, p.AmountPaise, after, &p.PaymentID, &p.CounterpartyVPA, nil)
		case events.DebitReversedV1:
			delta, after = p.AmountPaise, p.BalanceAfterPaise
			moves.add(e, contract.KindReversal, p.AmountPaise, after, &p.PaymentID, &p.CounterpartyVPA, nil)
		case events.RefundDebitedV1:
			delta, after = -p.AmountPaise, p.BalanceAfterPaise
			moves.add(e, contract.KindRefundDebit, p.AmountPaise, after, &p.PaymentID, &p.PayerVPA, nil)
			moves.withRRN(p.RRN)
			moves.withRefund(p.RefundID)
		case events.RefundDebitRejectedV1:
			delta, after = 0, p.BalancePaise
		case events.RefundCreditedV1:
			delta, after = p.AmountPaise, p.BalanceAfterPaise
			moves.add(e, contract.KindRefundCredit, p.AmountPaise, after, &p.PaymentID, &p.PayeeVPA, nil)
			moves.withRefund(p.RefundID)
		case events.RefundDebitReversedV1:
			delta, after = p.AmountPaise, p.BalanceAfterPaise
			moves.add(e, contract.KindRefundReversal, p.AmountPaise, after, &p.PaymentID, &p.PayerVPA, nil)
			moves.withRefund(p.RefundID)
		case events.FundsWithdrawnV1:
			delta, after = -p.AmountPaise, p.BalanceAfterPaise
			moves.add(e, contract.KindWithdrawal, p.AmountPaise, after, nil, nil, &p.Reference)
			moves.withRRN(p.RRN)
			moves.withWithdrawal(p.WithdrawalID)
			drawn.add(e, p.WithdrawalID, p.AmountPaise, p.Reference, p.ClientID, nil, p.RRN)
		case events.WithdrawalRejectedV1:
			delta, after = 0, p.BalancePaise // no money moved: the version, and the withdrawal's outcome
			code := p.Code
			drawn.add(e, p.WithdrawalID, p.AmountPaise, p.Reference, p.ClientID, &code, "")
		case events.AccountErasedV1:
			// Erased with a zero balance, closed for good (erasure.go).
			delta, after = 0, 0
			closed.add(e)
		default:
			return applyError(e, fmt.Errorf("%s is not an account event", e.Type))
		}
		c, seen := changes[e.AggregateID]
		if !seen {
			order = append(order, e.AggregateID)
		} else if e.Version != c.last().Version+1 {
			return applyError(e, fmt.Errorf("ordering violation: follows version %d in the batch", c.last().Version))
		}
		changes[e.AggregateID] = append(c, balanceStep{e: e, delta: delta, after: after})
	}

	if len(opens.vpa) > 0 {
		if _, err := tx.Exec(ctx, `
			insert into accounts (vpa, owner_client_id, holder_name, type, mcc, balance_paise, version, created_at,
				updated_at, tx_id, global_position)
			select vpa, owner, holder, kind, mcc, 0, 1, at, at, txid::text::xid8, gp
			from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::bigint[],
				$8::bigint[]) as u(vpa, owner, holder, kind, mcc, at, txid, gp)`,
			opens.vpa, opens.owner, opens.holder, opens.kind, opens.mcc, opens.at, opens.tx, opens.gp); err != nil {
			return fmt.Errorf("open accounts: %w", err)
		}
	}
	if len(order) > 0 {
		if err := updateAccounts(ctx, tx, changes, order); err != nil {
			return err
		}
	}
	if len(moves.vpa) > 0 {
		if _, err := tx.Exec(ctx, `
			insert into account_transactions (vpa, version, kind, amount_paise, balance_after_paise, payment_id,
				counterparty_vpa, reference, rrn, at, tx_id, global_position, refund_id, withdrawal_id)
			select vpa, version, kind, amount, after, payment::uuid, counterparty, reference, rrn, at, txid::text::xid8, gp,
				refund::uuid, withdrawal::uuid
			from unnest($1::text[], $2::int[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[],
				$8::text[], $9::text[], $10::timestamptz[], $11::bigint[], $12::bigint[], $13::text[], $14::text[])
				as u(vpa, version, kind, amount, after, payment, counterparty, reference, rrn, at, txid, gp, refund, withdrawal)`,
			moves.vpa, moves.version, moves.kind, moves.amount, moves.after, moves.payment, moves.counterparty,
			moves.reference, moves.rrn, moves.at, moves.tx, moves.gp, moves.refund, moves.withdrawal); err != nil {
			return fmt.Errorf("record account movements: %w", err)
		}
	}
	if err := drawn.write(ctx, tx); err != nil {
		return err
	}
	if err := closed.write(ctx, tx); err != nil {
		return err
	}
	return shards.write(ctx, tx)
}

// check compares the balance each event recorded with the balance the read model reaches, given the
// balance the read model has after the whole batch.
func (c accountChange) check(balance int64) error {
	running := balance - c.delta()
	for _, s := range c {
		running += s.delta
		if running != s.after {
			return applyError(s.e, fmt.Errorf("balance after is %d in the read model, %d in the event", running, s.after))
		}
	}
	return nil
}

// updateAccounts applies each account's net change in one statement, guarded by the version before the
// account's first event of the batch, then checks every event's recorded balance against the balance the
// read model had before the batch.
func updateAccounts(ctx context.Context, tx pgx.Tx, changes map[string]accountChange, order []string) error {
	n := len(order)
	deltas, txs, gps := make([]int64, n), make([]int64, n), make([]int64, n)
	firsts, lasts := make([]int32, n), make([]int32, n)
	ats := make([]time.Time, n)
	for i, vpa := range order {
		c := changes[vpa]
		last := c.last()
		deltas[i], firsts[i], lasts[i] = c.delta(), int32(c.first().Version), int32(last.Version)
		ats[i], txs[i], gps[i] = last.CreatedAt, txID(last), last.Position.GlobalPosition
	}
	rows, err := tx.Query(ctx, `
		update accounts a
		set balance_paise = a.balance_paise + u.delta, version = u.last, updated_at = u.at,
		    tx_id = u.txid::text::xid8, global_position = u.gp
		from unnest($1::text[], $2::bigint[], $3::int[], $4::int[], $5::timestamptz[], $6::bigint[], $7::bigint[])
			as u(vpa, delta, first, last, at, txid, gp)
		where a.vpa = u.vpa and a.version = u.first - 1
		returning a.vpa, a.balance_paise`, order, deltas, firsts, lasts, ats, txs, gps)
	if err != nil {
		return fmt.Errorf("update accounts: %w", err)
	}
	defer rows.Close()
	updated := 0
	for rows.Next() {
		var vpa string
		var balance int64
		if err := rows.Scan(&vpa, &balance); err != nil {
			return fmt.Errorf("update accounts: %w", err)
		}
		if err := changes[vpa].check(balance); err != nil {
			return err
		}
		updated++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("update accounts: %w", err)
	}
	if updated != len(order) {
		for _, vpa := range order {
			c := changes[vpa]
			var v int
			err := tx.QueryRow(ctx, `select version from accounts where vpa = $1`, vpa).Scan(&v)
			if errors.Is(err, pgx.ErrNoRows) {
				return applyError(c.first(), errors.New("ordering violation: the account is not open"))
			}
			if err == nil && v != c.first().Version-1 {
				return applyError(c.first(), fmt.Errorf("ordering violation: the read model is at version %d", v))
			}
		}
		return fmt.Errorf("update accounts: %d of %d accounts updated", updated, len(order))
	}
	return nil
}

// stamps are the columns every row of a projection carries: when its event happened and where it stands
// in the log.
type stamps struct {
	at     []time.Time
	tx, gp []int64
}

func (s *stamps) add(e eventstore.Event) {
	s.at, s.tx, s.gp = append(s.at, e.CreatedAt), append(s.tx, txID(e)), append(s.gp, e.Position.GlobalPosition)
}

// txID is the event's transaction id, sent as a bigint and cast to xid8 (through text) in SQL.
func txID(e eventstore.Event) int64 { return int64(e.Position.TxID) }

// applyError names the event a projection could not apply.
func applyError(e eventstore.Event, err error) error {
	return fmt.Errorf("event %s (%s %s v%d at %s): %w", e.ID, e.Type, e.AggregateID, e.Version, e.Position.Token(), err)
}
