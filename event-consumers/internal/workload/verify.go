package workload

import (
	"context"
	"fmt"

	"upi/shared/platform/eventstore"
)

// Verify checks the live read models against the expected outcome: every balance and owner, every
// payment status, one transaction row per money movement, an audit trail line per payment event.
func Verify(ctx context.Context, q eventstore.Querier, want Expected) error {
	if err := VerifyBalances(ctx, q, want); err != nil {
		return err
	}
	return verifyPayments(ctx, q, want)
}

// VerifyBalances checks the accounts projection only.
func VerifyBalances(ctx context.Context, q eventstore.Querier, want Expected) error {
	rows, err := q.Query(ctx, `select vpa, owner_client_id, balance_paise from accounts`)
	if err != nil {
		return err
	}
	got := map[string]int64{}
	for rows.Next() {
		var vpa, owner string
		var bal int64
		if err := rows.Scan(&vpa, &owner, &bal); err != nil {
			return err
		}
		got[vpa] = bal
		if owner != want.Owners[vpa] {
			return fmt.Errorf("account %s owned by %q, want %q", vpa, owner, want.Owners[vpa])
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(got) != len(want.Balances) {
		return fmt.Errorf("%d accounts, want %d", len(got), len(want.Balances))
	}
	for vpa, bal := range want.Balances {
		if got[vpa] != bal {
			return fmt.Errorf("account %s balance %d, want %d", vpa, got[vpa], bal)
		}
	}
	var moves int
	if err := q.QueryRow(ctx, `select count(*) from account_transactions`).Scan(&moves); err != nil {
		return err
	}
	if moves != want.Moves {
		return fmt.Errorf("%d account transactions, want %d", moves, want.Moves)
	}
	return nil
}

func verifyPayments(ctx context.Context, q eventstore.Querier, want Expected) error {
	var trail, wantTrail int
	rows, err := q.Query(ctx, `select payment_id::text, status from payments`)
	if err != nil {
		return err
	}
	statuses := map[string]string{}
	for rows.Next() {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			return err
		}
		statuses[id] = st
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(statuses) != len(want.Statuses) {
		return fmt.Errorf("%d payments, want %d", len(statuses), len(want.Statuses))
	}
	for id, st := range want.Statuses {
		if statuses[id] != st {
			return fmt.Errorf("payment %s is %q, want %q", id, statuses[id], st)
		}
	}
	if err := q.QueryRow(ctx, `select count(*) from payment_events`).Scan(&trail); err != nil {
		return err
	}
	if err := q.QueryRow(ctx, `select count(*) from events where aggregate_type = 'payment'
		or payload ? 'payment_id' and aggregate_type = 'account'`).Scan(&wantTrail); err != nil {
		return err
	}
	if trail != wantTrail {
		return fmt.Errorf("%d audit trail lines, want %d", trail, wantTrail)
	}
	return nil
}

// LastPosition is the position of the last event in the log: where a consumer that has caught up with
// everything appended so far has its checkpoint.
func LastPosition(ctx context.Context, q eventstore.Querier) (eventstore.Position, error) {
	var last eventstore.Position
	err := q.QueryRow(ctx, `select tx_id::text::bigint, global_position from events
		order by tx_id desc, global_position desc limit 1`).Scan(&last.TxID, &last.GlobalPosition)
	return last, err
}
