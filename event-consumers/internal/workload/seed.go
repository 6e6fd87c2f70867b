package workload

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// SeedPaise is the amount of every seeded payment.
const SeedPaise = 100

// Seed appends, with a few large SQL statements, a consistent log of 2*pairs accounts and pairs*payments
// completed payments (4 events each: initiated, debited, credited, completed), each pair of accounts
// paying within itself so that every balance after is known. It returns the number of events appended.
// It is for benchmarks: a million events in seconds instead of the minutes real commands would take.
func Seed(ctx context.Context, pool *pgxpool.Pool, pairs, payments int) (int, error) {
	deposit := payments * SeedPaise
	_, err := pool.Exec(ctx, `
		insert into events (event_id, aggregate_id, aggregate_type, event_type, version, payload)
		select gen_random_uuid(), vpa, 'account', typ, ver, payload from (
			select k, 1 as step, 'p' || k || '@seed' as vpa, 'AccountOpened' as typ, 1 as ver,
			       jsonb_build_object('vpa', 'p' || k || '@seed', 'holder_name', 'Payer ' || k, 'owner_client_id', 'seed') as payload
			from generate_series(1, $1) k
			union all
			select k, 2, 'q' || k || '@seed', 'AccountOpened', 1,
			       jsonb_build_object('vpa', 'q' || k || '@seed', 'holder_name', 'Payee ' || k, 'owner_client_id', 'seed')
			from generate_series(1, $1) k
			union all
			select k, 3, 'p' || k || '@seed', 'FundsDeposited', 2,
			       jsonb_build_object('vpa', 'p' || k || '@seed', 'amount_paise', $2::bigint, 'reference', 'seed',
			                          'balance_after_paise', $2::bigint)
			from generate_series(1, $1) k) s
		order by k, step`, pairs, deposit)
	if err != nil {
		return 0, fmt.Errorf("seed accounts: %w", err)
	}
	// One transaction per round of payments, so the log has many transaction ids, as in life.
	for j := 1; j <= payments; j++ {
		_, err := pool.Exec(ctx, `
			insert into events (event_id, aggregate_id, aggregate_type, event_type, version, payload)
			select gen_random_uuid(), agg, atype, typ, ver, payload from (
				select k, pid, 'p' || k || '@seed' as payer, 'q' || k || '@seed' as payee
				from (select k, md5('pay-' || k || '-' || $1::int)::uuid::text as pid from generate_series(1, $2) k) x) p,
			lateral (values
				(1, pid, 'payment', 'PaymentInitiated', 1, jsonb_build_object('payment_id', pid, 'payer_vpa', payer,
					'payee_vpa', payee, 'amount_paise', $4::bigint, 'note', 'seed', 'client_id', 'seed')),
				(2, payer, 'account', 'AccountDebited', 2 + $1::int, jsonb_build_object('vpa', payer, 'payment_id', pid,
					'amount_paise', $4::bigint, 'counterparty_vpa', payee, 'balance_after_paise', $3::bigint - $4::bigint * $1::int)),
				(3, payee, 'account', 'AccountCredited', 1 + $1::int, jsonb_build_object('vpa', payee, 'payment_id', pid,
					'amount_paise', $4::bigint, 'counterparty_vpa', payer, 'balance_after_paise', $4::bigint * $1::int)),
				(4, pid, 'payment', 'PaymentCompleted', 2, jsonb_build_object('payment_id', pid))
			) as e(step, agg, atype, typ, ver, payload)
			order by p.k, e.step`, j, pairs, deposit, SeedPaise)
		if err != nil {
			return 0, fmt.Errorf("seed payments round %d: %w", j, err)
		}
	}
	return 3*pairs + 4*pairs*payments, nil
}
