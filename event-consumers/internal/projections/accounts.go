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
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"upi/shared/contract"
	"upi/shared/events"
	"upi/shared/eventstore"
	"upi/shared/projection"
)

// Accounts is the "accounts" projection: accounts and their money movements.
type Accounts struct{}

// Name implements runner.Projection.
func (Accounts) Name() string { return projection.Accounts }

// Tables implements runner.Projection.
func (Accounts) Tables() []string { return []string{"accounts", "account_transactions"} }

// accountChange is the effect of a batch's events on one existing account.
type accountChange struct {
	vpa          string
	first, last  eventstore.Event // first and last event of the account in the batch
	delta        int64
	balanceAfter []int64 // the balance each event recorded, in order
	deltas       []int64
	events       []eventstore.Event
}

// Apply implements runner.Projection.
func (Accounts) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	var opens columns
	var moves columns
	changes := map[string]*accountChange{}
	var order []string
	for _, e := range batch {
		if e.AggregateType != events.AggregateAccount {
			continue
		}
		p, err := events.Decode(e.Type, e.Payload)
		if err != nil {
			return applyError(e, err)
		}
		var delta, after int64
		switch p := p.(type) {
		case events.AccountOpenedV1:
			if e.Version != 1 {
				return applyError(e, fmt.Errorf("opens a stream at version %d", e.Version))
			}
			opens.add(e.AggregateID, p.OwnerClientID, p.HolderName, e.CreatedAt, txID(e), e.Position.GlobalPosition)
			continue
		case events.FundsDepositedV1:
			delta, after = p.AmountPaise, p.BalanceAfterPaise
			moves.add(e.AggregateID, int32(e.Version), contract.KindDeposit, p.AmountPaise, after, none, none, &p.Reference,
				e.CreatedAt, txID(e), e.Position.GlobalPosition)
		case events.AccountDebitedV1:
			delta, after = -p.AmountPaise, p.BalanceAfterPaise
			moves.add(e.AggregateID, int32(e.Version), contract.KindDebit, p.AmountPaise, after, &p.PaymentID,
				&p.CounterpartyVPA, none, e.CreatedAt, txID(e), e.Position.GlobalPosition)
		case events.DebitRejectedV1:
			delta, after = 0, p.BalancePaise // no money moved: no movement row, only the version
		case events.AccountCreditedV1:
			delta, after = p.AmountPaise, p.BalanceAfterPaise
			moves.add(e.AggregateID, int32(e.Version), contract.KindCredit, p.AmountPaise, after, &p.PaymentID,
				&p.CounterpartyVPA, none, e.CreatedAt, txID(e), e.Position.GlobalPosition)
		case events.DebitReversedV1:
			delta, after = p.AmountPaise, p.BalanceAfterPaise
			moves.add(e.AggregateID, int32(e.Version), contract.KindReversal, p.AmountPaise, after, &p.PaymentID,
				&p.CounterpartyVPA, none, e.CreatedAt, txID(e), e.Position.GlobalPosition)
		default:
			return applyError(e, fmt.Errorf("%s is not an account event", e.Type))
		}
		c := changes[e.AggregateID]
		if c == nil {
			c = &accountChange{vpa: e.AggregateID, first: e}
			changes[e.AggregateID] = c
			order = append(order, e.AggregateID)
		} else if e.Version != c.last.Version+1 {
			return applyError(e, fmt.Errorf("ordering violation: follows version %d in the batch", c.last.Version))
		}
		c.last = e
		c.delta += delta
		c.deltas = append(c.deltas, delta)
		c.balanceAfter = append(c.balanceAfter, after)
		c.events = append(c.events, e)
	}

	if opens.n > 0 {
		if _, err := tx.Exec(ctx, `
			insert into accounts (vpa, owner_client_id, holder_name, balance_paise, version, created_at, updated_at,
				tx_id, global_position)
			select vpa, owner, holder, 0, 1, at, at, txid::xid8, gp
			from unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::bigint[])
				as u(vpa, owner, holder, at, txid, gp)`, opens.cols...); err != nil {
			return fmt.Errorf("open accounts: %w", err)
		}
	}
	if len(order) > 0 {
		if err := updateAccounts(ctx, tx, changes, order); err != nil {
			return err
		}
	}
	if moves.n > 0 {
		if _, err := tx.Exec(ctx, `
			insert into account_transactions (vpa, version, kind, amount_paise, balance_after_paise, payment_id,
				counterparty_vpa, reference, at, tx_id, global_position)
			select vpa, version, kind, amount, after, payment::uuid, counterparty, reference, at, txid::xid8, gp
			from unnest($1::text[], $2::int[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[],
				$8::text[], $9::timestamptz[], $10::text[], $11::bigint[])
				as u(vpa, version, kind, amount, after, payment, counterparty, reference, at, txid, gp)`,
			moves.cols...); err != nil {
			return fmt.Errorf("record account movements: %w", err)
		}
	}
	return nil
}

// updateAccounts applies each account's net change in one statement, guarded by the version before the
// account's first event of the batch, then checks every event's recorded balance against the balance the
// read model had before the batch.
func updateAccounts(ctx context.Context, tx pgx.Tx, changes map[string]*accountChange, order []string) error {
	var cols columns
	for _, vpa := range order {
		c := changes[vpa]
		cols.add(vpa, c.delta, int32(c.first.Version), int32(c.last.Version), c.last.CreatedAt, txID(c.last),
			c.last.Position.GlobalPosition)
	}
	rows, err := tx.Query(ctx, `
		update accounts a
		set balance_paise = a.balance_paise + u.delta, version = u.last, updated_at = u.at,
		    tx_id = u.txid::xid8, global_position = u.gp
		from unnest($1::text[], $2::bigint[], $3::int[], $4::int[], $5::timestamptz[], $6::text[], $7::bigint[])
			as u(vpa, delta, first, last, at, txid, gp)
		where a.vpa = u.vpa and a.version = u.first - 1
		returning a.vpa, a.balance_paise`, cols.cols...)
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
		c := changes[vpa]
		running := balance - c.delta
		for i, e := range c.events {
			running += c.deltas[i]
			if running != c.balanceAfter[i] {
				return applyError(e, fmt.Errorf("balance after is %d in the read model, %d in the event", running, c.balanceAfter[i]))
			}
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
				return applyError(c.first, errors.New("ordering violation: the account is not open"))
			}
			if err == nil && v != c.first.Version-1 {
				return applyError(c.first, fmt.Errorf("ordering violation: the read model is at version %d", v))
			}
		}
		return fmt.Errorf("update accounts: %d of %d accounts updated", updated, len(order))
	}
	return nil
}

// columns gathers a batch's values column by column, for unnest.
type columns struct {
	cols []any
	n    int
}

// add appends one row; every call must pass the same types in the same order.
func (c *columns) add(values ...any) {
	if c.cols == nil {
		c.cols = make([]any, len(values))
		for i, v := range values {
			switch v.(type) {
			case string:
				c.cols[i] = []string{}
			case *string:
				c.cols[i] = []*string{}
			case int64:
				c.cols[i] = []int64{}
			case int32:
				c.cols[i] = []int32{}
			case time.Time:
				c.cols[i] = []time.Time{}
			default:
				panic(fmt.Sprintf("columns: unsupported type %T", v))
			}
		}
	}
	for i, v := range values {
		switch col := c.cols[i].(type) {
		case []string:
			c.cols[i] = append(col, v.(string))
		case []*string:
			c.cols[i] = append(col, v.(*string))
		case []int64:
			c.cols[i] = append(col, v.(int64))
		case []int32:
			c.cols[i] = append(col, v.(int32))
		case []time.Time:
			c.cols[i] = append(col, v.(time.Time))
		}
	}
	c.n++
}

// none is a NULL text column value.
var none *string

func txID(e eventstore.Event) string { return strconv.FormatUint(e.Position.TxID, 10) }

// applyError names the event a projection could not apply.
func applyError(e eventstore.Event, err error) error {
	return fmt.Errorf("event %s (%s %s v%d at %s): %w", e.ID, e.Type, e.AggregateID, e.Version, e.Position.Token(), err)
}
