package projections

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"upi/shared/contract/events"
	"upi/shared/platform/eventstore"
)

// withdrawalRows are the withdrawals a batch decides, column by column for unnest. code is nil for a
// completed one; rrn is nil for a failed one.
type withdrawalRows struct {
	id, vpa, reference, client []string
	amount                     []int64
	code, rrn                  []*string
	stamps
}

func (r *withdrawalRows) add(e eventstore.Event, id string, amount int64, reference, client string, code *string, rrn string) {
	r.id, r.vpa, r.reference, r.client = append(r.id, id), append(r.vpa, e.AggregateID), append(r.reference, reference), append(r.client, client)
	r.amount, r.code = append(r.amount, amount), append(r.code, code)
	var rp *string
	if rrn != "" {
		rp = &rrn
	}
	r.rrn = append(r.rrn, rp)
	r.stamps.add(e)
}

// write records the withdrawals, owned by their account's owner (the accounts rows are written first, in
// the same batch, so an account opened in it is there). A withdrawal id is its event's id: a second row
// for one is a primary-key violation, never a silent overwrite.
func (r *withdrawalRows) write(ctx context.Context, tx pgx.Tx) error {
	if len(r.id) == 0 {
		return nil
	}
	tag, err := tx.Exec(ctx, `
		insert into withdrawals (withdrawal_id, vpa, owner_client_id, amount_paise, reference, status, failure_code,
			rrn, created_at, updated_at, tx_id, global_position)
		select u.id::uuid, u.vpa, coalesce(a.owner_client_id, u.client), u.amount, u.reference,
			case when u.code is null then 'COMPLETED' else 'FAILED' end, u.code, u.rrn, u.at, u.at, u.txid::text::xid8, u.gp
		from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[],
			$8::timestamptz[], $9::bigint[], $10::bigint[]) as u(id, vpa, client, amount, reference, code, rrn, at, txid, gp)
		left join accounts a on a.vpa = u.vpa`,
		r.id, r.vpa, r.client, r.amount, r.reference, r.code, r.rrn, r.at, r.tx, r.gp)
	if err != nil {
		return fmt.Errorf("record withdrawals: %w", err)
	}
	if int(tag.RowsAffected()) != len(r.id) {
		return fmt.Errorf("record withdrawals: %d of %d recorded", tag.RowsAffected(), len(r.id))
	}
	return nil
}

// shardKey is a settlement shard as its row names it.
type shardKey struct {
	bank  string
	shard int
}

// parseSettlementStream is the bank and shard of a settlement stream's aggregate id
// (events.SettlementStream); an id that SettlementStream would not have made is refused.
func parseSettlementStream(id string) (shardKey, error) {
	rest, ok := strings.CutPrefix(id, "settlement:")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i <= 0 {
		return shardKey{}, fmt.Errorf("%q is not a settlement stream", id)
	}
	n, err := strconv.Atoi(rest[i+1:])
	if err != nil || n < 0 || events.SettlementStream(rest[:i], n) != id {
		return shardKey{}, fmt.Errorf("%q is not a settlement stream", id)
	}
	return shardKey{bank: rest[:i], shard: n}, nil
}

// streamChanges are a batch's events on the settlement shards, by stream, in log order: each shard's
// events with the change each made to its balance and the balance it recorded (an accountChange, the
// same checks as an account's).
type streamChanges struct {
	changes map[string]accountChange
	order   []string
	keys    map[string]shardKey
}

// add gathers one settlement event; it must continue its shard's stream within the batch.
func (s *streamChanges) add(e eventstore.Event, p events.Payload) error {
	var move events.SettlementMove
	var delta int64
	switch p := p.(type) {
	case events.SettlementDebitedV1: // a deposit: money leaves the bank's side
		move, delta = p.SettlementMove, -p.AmountPaise
	case events.SettlementCreditedV1: // a withdrawal: money comes back to it
		move, delta = p.SettlementMove, p.AmountPaise
	default:
		return applyError(e, fmt.Errorf("%s is not a settlement event", e.Type))
	}
	key, err := parseSettlementStream(e.AggregateID)
	if err != nil {
		return applyError(e, err)
	}
	if key.bank != move.Bank {
		return applyError(e, fmt.Errorf("names bank %q on a shard of %q", move.Bank, key.bank))
	}
	c, seen := s.changes[e.AggregateID]
	if !seen {
		s.order = append(s.order, e.AggregateID)
		if s.keys == nil {
			s.keys = map[string]shardKey{}
		}
		s.keys[e.AggregateID] = key
	} else if e.Version != c.last().Version+1 {
		return applyError(e, fmt.Errorf("ordering violation: follows version %d in the batch", c.last().Version))
	}
	s.changes[e.AggregateID] = append(c, balanceStep{e: e, delta: delta, after: move.BalanceAfterPaise})
	return nil
}

// shardRows are the net changes of a batch to some shards, column by column for unnest.
type shardRows struct {
	bank                      []string
	shard, first, last        []int32
	delta, deposits, withdraw []int64
	at                        []time.Time
	tx, gp                    []int64
}

func (r *shardRows) add(key shardKey, c accountChange) {
	var deposits, withdrawals int64
	for _, s := range c {
		if s.e.Type == events.SettlementDebited {
			deposits++
		} else {
			withdrawals++
		}
	}
	last := c.last()
	r.bank, r.shard = append(r.bank, key.bank), append(r.shard, int32(key.shard))
	r.first, r.last = append(r.first, int32(c.first().Version)), append(r.last, int32(last.Version))
	r.delta, r.deposits, r.withdraw = append(r.delta, c.delta()), append(r.deposits, deposits), append(r.withdraw, withdrawals)
	r.at, r.tx, r.gp = append(r.at, last.CreatedAt), append(r.tx, txID(last)), append(r.gp, last.Position.GlobalPosition)
}

// write applies the batch to the shards' rows in at most two statements: shards whose stream starts in the
// batch (version 1: a shard has no opening event, its first move creates it) are inserted, the others
// updated, guarded by the version before their first event of the batch. Every event's recorded balance
// is then checked against the row, as an account's.
func (s *streamChanges) write(ctx context.Context, tx pgx.Tx) error {
	if len(s.order) == 0 {
		return nil
	}
	var fresh, known shardRows
	for _, id := range s.order {
		if c := s.changes[id]; c.first().Version == 1 {
			fresh.add(s.keys[id], c)
		} else {
			known.add(s.keys[id], c)
		}
	}
	byKey := make(map[shardKey]string, len(s.order))
	for _, id := range s.order {
		byKey[s.keys[id]] = id
	}
	checked := 0
	check := func(rows pgx.Rows, what string) error {
		defer rows.Close()
		for rows.Next() {
			var key shardKey
			var balance int64
			if err := rows.Scan(&key.bank, &key.shard, &balance); err != nil {
				return fmt.Errorf("%s settlement shards: %w", what, err)
			}
			if err := s.changes[byKey[key]].check(balance); err != nil {
				return err
			}
			checked++
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("%s settlement shards: %w", what, err)
		}
		return nil
	}
	if len(fresh.bank) > 0 {
		rows, err := tx.Query(ctx, `
			insert into settlement_accounts (bank, shard, balance_paise, deposits, withdrawals, version, updated_at,
				tx_id, global_position)
			select bank, shard, delta, deposits, withdrawals, last, at, txid::text::xid8, gp
			from unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[], $6::int[], $7::timestamptz[],
				$8::bigint[], $9::bigint[]) as u(bank, shard, delta, deposits, withdrawals, last, at, txid, gp)
			returning bank, shard, balance_paise`,
			fresh.bank, fresh.shard, fresh.delta, fresh.deposits, fresh.withdraw, fresh.last, fresh.at, fresh.tx, fresh.gp)
		if err != nil {
			return fmt.Errorf("open settlement shards: %w", err)
		}
		if err := check(rows, "open"); err != nil {
			return err
		}
	}
	if len(known.bank) > 0 {
		rows, err := tx.Query(ctx, `
			update settlement_accounts s
			set balance_paise = s.balance_paise + u.delta, deposits = s.deposits + u.deposits,
			    withdrawals = s.withdrawals + u.withdrawals, version = u.last, updated_at = u.at,
			    tx_id = u.txid::text::xid8, global_position = u.gp
			from unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[], $6::int[], $7::int[],
				$8::timestamptz[], $9::bigint[], $10::bigint[])
				as u(bank, shard, delta, deposits, withdrawals, first, last, at, txid, gp)
			where s.bank = u.bank and s.shard = u.shard and s.version = u.first - 1
			returning s.bank, s.shard, s.balance_paise`,
			known.bank, known.shard, known.delta, known.deposits, known.withdraw, known.first, known.last, known.at,
			known.tx, known.gp)
		if err != nil {
			return fmt.Errorf("update settlement shards: %w", err)
		}
		if err := check(rows, "update"); err != nil {
			return err
		}
	}
	if checked != len(s.order) {
		return s.violation(ctx, tx)
	}
	return nil
}

// violation names the first shard event that did not follow its row's version.
func (s *streamChanges) violation(ctx context.Context, tx pgx.Tx) error {
	for _, id := range s.order {
		c, key := s.changes[id], s.keys[id]
		var v int
		err := tx.QueryRow(ctx, `select version from settlement_accounts where bank = $1 and shard = $2`,
			key.bank, key.shard).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			return applyError(c.first(), errors.New("ordering violation: the shard has no earlier move"))
		}
		if err == nil && v != c.first().Version-1 {
			return applyError(c.first(), fmt.Errorf("ordering violation: the read model is at version %d", v))
		}
	}
	return errors.New("update settlement shards: some shards were not updated")
}
