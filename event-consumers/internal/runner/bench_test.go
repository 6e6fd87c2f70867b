package runner_test

import (
	"context"
	"testing"
	"time"

	"upi/event-consumers/internal/adapters/postgres/projections"
	"upi/event-consumers/internal/runner"
	"upi/event-consumers/internal/workload"
	"upi/testenv"
)

// BenchmarkProjectionsSteadyState measures the live runner (default batch size, both projections running
// side by side) applying a seeded log: events applied per second per projection.
func BenchmarkProjectionsSteadyState(b *testing.B) {
	pool, _ := testenv.PostgresPool(b)
	ctx := context.Background()
	n, err := workload.Seed(ctx, pool, 250, 100) // ~100k events
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := pool.Exec(ctx, `update projection_checkpoints set tx_id = '0', global_position = 0;
			truncate accounts, account_transactions, payments, payment_events, payment_account_owners`); err != nil {
			b.Fatal(err)
		}
		began := time.Now()
		stop := start(b, pool, runner.Options{}, projections.Accounts{}, projections.Payments{})
		waitCaughtUpWithin(b, pool, 10*time.Minute, "accounts", "payments")
		elapsed := time.Since(began)
		stop()
		b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(n), "events")
	}
}

// BenchmarkRebuild1M seeds a million events and rebuilds both projections from them.
func BenchmarkRebuild1M(b *testing.B) {
	pool, _ := testenv.PostgresPool(b)
	ctx := context.Background()
	began := time.Now()
	n, err := workload.Seed(ctx, pool, 1000, 250) // 1,003,000 events
	if err != nil {
		b.Fatal(err)
	}
	seeded := time.Since(began)
	b.ResetTimer()
	for range b.N {
		var replayed int
		var took time.Duration
		for _, p := range []runner.Projection{projections.Accounts{}, projections.Payments{}} {
			res, err := runner.Rebuild(ctx, pool, testLog(b), p, 0)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(res.Duration.Seconds(), p.Name()+"_s")
			replayed += res.Events
			took += res.Duration
		}
		// Each projection replays the whole log: events/s is log events replayed per second of rebuilding.
		b.ReportMetric(float64(replayed)/took.Seconds(), "events/s")
	}
	// Every payer paid its whole deposit to its payee.
	var settled int
	if err := pool.QueryRow(ctx, `select count(*) from accounts where balance_paise = case
		when vpa like 'p%' then 0 else $1 end`, workload.SeedPaise*250).Scan(&settled); err != nil {
		b.Fatal(err)
	}
	if settled != 2000 {
		b.Fatalf("%d of 2000 rebuilt accounts have the expected balance", settled)
	}
	b.ReportMetric(float64(n), "events")
	b.ReportMetric(seeded.Seconds(), "seed_s")
}
