package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/shared/contract"
	"upi/shared/platform/eventstore"
)

// Settlement reads the "settlement" projection (settlement_cycles, settlement_lines); it implements
// settlement.Reader.
type Settlement struct{ pool *pgxpool.Pool }

// NewSettlement returns the settlement reader of the database behind pool.
func NewSettlement(pool *pgxpool.Pool) *Settlement { return &Settlement{pool: pool} }

const cycleColumns = `c.cycle_id, c.starts_at, c.ends_at, c.closed, c.closed_at,
	(select count(*) from settlement_lines l where l.cycle_id = c.cycle_id and l.side = 'DEBIT'),
	(select coalesce(sum(amount_paise), 0)::bigint from settlement_lines l where l.cycle_id = c.cycle_id and l.side = 'DEBIT')`

func scanCycle(row pgx.Row) (contract.SettlementCycle, error) {
	var c contract.SettlementCycle
	var start, end time.Time
	var closed bool
	var closedAt *time.Time
	if err := row.Scan(&c.CycleID, &start, &end, &closed, &closedAt, &c.Movements, &c.AmountPaise); err != nil {
		return c, err
	}
	c.StartsAt, c.EndsAt, c.Status = contract.Time(start), contract.Time(end), contract.CycleOpen
	if closed {
		c.Status = contract.CycleClosed
		if closedAt != nil {
			s := contract.Time(*closedAt)
			c.ClosedAt = &s
		}
	}
	return c, nil
}

// Cycles implements settlement.Reader.
func (s *Settlement) Cycles(ctx context.Context) ([]contract.SettlementCycle, error) {
	rows, err := s.pool.Query(ctx, `select `+cycleColumns+` from settlement_cycles c order by c.starts_at desc limit 1000`)
	if err != nil {
		return nil, eventstore.MarkUnavailable(fmt.Errorf("read settlement cycles: %w", err))
	}
	defer rows.Close()
	var out []contract.SettlementCycle
	for rows.Next() {
		c, err := scanCycle(rows)
		if err != nil {
			return nil, eventstore.MarkUnavailable(fmt.Errorf("read settlement cycles: %w", err))
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, eventstore.MarkUnavailable(fmt.Errorf("read settlement cycles: %w", err))
	}
	return out, nil
}

// Cycle implements settlement.Reader: the cycle and its positions in one snapshot (one transaction).
func (s *Settlement) Cycle(ctx context.Context, id string) (c contract.SettlementCycle, positions []contract.SettlementPosition, found bool, err error) {
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		c, err = scanCycle(tx.QueryRow(ctx, `select `+cycleColumns+` from settlement_cycles c where c.cycle_id = $1`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		rows, err := tx.Query(ctx, `
			select bank,
				coalesce(sum(amount_paise) filter (where side = 'DEBIT'), 0)::bigint,
				coalesce(sum(amount_paise) filter (where side = 'CREDIT'), 0)::bigint,
				count(*) filter (where side = 'DEBIT'), count(*) filter (where side = 'CREDIT')
			from settlement_lines where cycle_id = $1 group by bank order by bank`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var p contract.SettlementPosition
			if err := rows.Scan(&p.Bank, &p.PaidOutPaise, &p.ReceivedPaise, &p.Debits, &p.Credits); err != nil {
				return err
			}
			p.NetPaise = p.ReceivedPaise - p.PaidOutPaise - p.FeesPaise
			positions = append(positions, p)
		}
		return rows.Err()
	})
	if err != nil {
		return c, nil, false, eventstore.MarkUnavailable(fmt.Errorf("read settlement cycle %s: %w", id, err))
	}
	return c, positions, found, nil
}

// Lines implements settlement.Reader.
func (s *Settlement) Lines(ctx context.Context, cycle, bank string) ([]contract.ReconLine, error) {
	rows, err := s.pool.Query(ctx, `
		select upi_txn_id, rrn, type, side, payer_vpa, payee_vpa, amount_paise, npci_code, at
		from settlement_lines where cycle_id = $1 and bank = $2
		order by at, upi_txn_id, side`, cycle, bank)
	if err != nil {
		return nil, eventstore.MarkUnavailable(fmt.Errorf("read settlement lines: %w", err))
	}
	defer rows.Close()
	var out []contract.ReconLine
	for rows.Next() {
		var l contract.ReconLine
		var at time.Time
		if err := rows.Scan(&l.UPITxnID, &l.RRN, &l.Type, &l.Side, &l.PayerVPA, &l.PayeeVPA, &l.AmountPaise, &l.NPCICode, &at); err != nil {
			return nil, eventstore.MarkUnavailable(fmt.Errorf("read settlement lines: %w", err))
		}
		l.Time = contract.Time(at)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, eventstore.MarkUnavailable(fmt.Errorf("read settlement lines: %w", err))
	}
	return out, nil
}
