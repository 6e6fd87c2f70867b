package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/event-consumers/internal/app/ledger"
	"upi/event-consumers/internal/runner"
	"upi/shared/contract/events"
	"upi/shared/contract/projection"
	"upi/shared/platform/eventstore"
)

// LedgerStore implements ledger.Store: a snapshot is one read-only REPEATABLE READ transaction, so the log
// below its horizon, the read models and their checkpoints are all as of one moment. A read-only
// transaction is given no transaction id, so it holds back no consumer's horizon (the horizon is the
// oldest running transaction id), however long the replay takes.
type LedgerStore struct{ pool *pgxpool.Pool }

// NewLedgerStore returns the store of the database behind pool.
func NewLedgerStore(pool *pgxpool.Pool) *LedgerStore { return &LedgerStore{pool: pool} }

// View implements ledger.Store.
func (s *LedgerStore) View(ctx context.Context, fn func(ctx context.Context, s ledger.Snapshot) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin snapshot: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only: nothing to undo
	var now time.Time
	if err := tx.QueryRow(ctx, `select now()`).Scan(&now); err != nil {
		return fmt.Errorf("begin snapshot: %w", err)
	}
	return fn(ctx, ledgerSnapshot{tx: tx, now: now})
}

type ledgerSnapshot struct {
	tx  pgx.Tx
	now time.Time
}

func (s ledgerSnapshot) Now() time.Time { return s.now }

func (s ledgerSnapshot) ReadLog(ctx context.Context, after eventstore.Position, limit int) ([]eventstore.Event, error) {
	return eventstore.ReadLog(ctx, s.tx, after, limit)
}

// ReadModels reads the tables of the accounts and payments projections, and their checkpoints.
func (s ledgerSnapshot) ReadModels(ctx context.Context) (ledger.ReadModels, error) {
	m := ledger.ReadModels{Accounts: map[string]ledger.Account{}, Settlements: map[string]ledger.Settlement{},
		Payments: map[string]ledger.Payment{}, Withdrawals: map[string]ledger.Withdrawal{}}
	var name string
	var p eventstore.Position
	parts := map[string][]partRow{}
	if err := readRows(ctx, s.tx, `select name, tx_id::text::bigint, global_position from projection_checkpoints`,
		[]any{&name, &p.TxID, &p.GlobalPosition}, func() {
			switch name {
			case projection.Accounts:
				m.AccountsAt = p
			case projection.Payments:
				m.PaymentsAt = p
			}
			if base, k, n, ok := runner.ParsePartition(name); ok {
				parts[base] = append(parts[base], partRow{k: k, n: n, at: p})
			}
		}); err != nil {
		return m, fmt.Errorf("read checkpoints: %w", err)
	}
	m.AccountsParts = partsAhead(m.AccountsAt, parts[projection.Accounts])
	m.PaymentsParts = partsAhead(m.PaymentsAt, parts[projection.Payments])
	m.Owner = runner.PartitionOf

	var vpa string
	var a ledger.Account
	if err := readRows(ctx, s.tx, `select vpa, balance_paise, version from accounts`,
		[]any{&vpa, &a.Balance, &a.Version}, func() { m.Accounts[vpa] = a }); err != nil {
		return m, fmt.Errorf("read accounts: %w", err)
	}
	var bank string
	var shard int
	var st ledger.Settlement
	if err := readRows(ctx, s.tx, `select bank, shard, balance_paise, deposits, withdrawals, version from settlement_accounts`,
		[]any{&bank, &shard, &st.Balance, &st.Deposits, &st.Withdrawals, &st.Version},
		func() { m.Settlements[events.SettlementStream(bank, shard)] = st }); err != nil {
		return m, fmt.Errorf("read settlement accounts: %w", err)
	}
	var id string
	var pay ledger.Payment
	if err := readRows(ctx, s.tx, `select payment_id::text, status, coalesce(failure_code, ''), coalesce(rrn, '') from payments`,
		[]any{&id, &pay.Status, &pay.FailureCode, &pay.RRN}, func() { m.Payments[id] = pay }); err != nil {
		return m, fmt.Errorf("read payments: %w", err)
	}
	var w ledger.Withdrawal
	if err := readRows(ctx, s.tx, `select withdrawal_id::text, vpa, amount_paise, status, coalesce(failure_code, ''),
			coalesce(rrn, '') from withdrawals`,
		[]any{&id, &w.VPA, &w.Amount, &w.Status, &w.FailureCode, &w.RRN}, func() { m.Withdrawals[id] = w }); err != nil {
		return m, fmt.Errorf("read withdrawals: %w", err)
	}
	return m, nil
}

// partRow is the checkpoint of one partition of a projection.
type partRow struct {
	k, n int
	at   eventstore.Position
}

// partsAhead are the checkpoints of the layouts (CONSUMER_PARTITIONS) whose partitions are ahead of the
// projection's checkpoint name, each by K (the start of the log for a row that is gone); none when no
// partition is ahead.
func partsAhead(name eventstore.Position, rows []partRow) [][]eventstore.Position {
	byN := map[int][]eventstore.Position{}
	var order []int
	for _, r := range rows {
		if !name.Less(r.at) {
			continue
		}
		if byN[r.n] == nil {
			byN[r.n] = make([]eventstore.Position, r.n)
			order = append(order, r.n)
		}
	}
	for _, r := range rows {
		if l := byN[r.n]; l != nil {
			l[r.k] = r.at
		}
	}
	out := make([][]eventstore.Position, 0, len(order))
	for _, n := range order {
		out = append(out, byN[n])
	}
	return out
}

// readRows runs sql and calls each for every row scanned into dest.
func readRows(ctx context.Context, tx pgx.Tx, sql string, dest []any, each func()) error {
	rows, err := tx.Query(ctx, sql)
	if err != nil {
		return err
	}
	_, err = pgx.ForEachRow(rows, dest, func() error { each(); return nil })
	return err
}
