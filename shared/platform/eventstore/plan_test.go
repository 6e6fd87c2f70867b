package eventstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/shared/platform/eventstore"
)

// Every consumer poll runs ReadLog and every lag metric runs Head, so on a large log neither may scan the
// whole table: each must walk the (tx_id, global_position) index. The planner's choice is read from the
// table's scan counters, on one connection so that its statistics can be flushed before they are read.
func TestReadLogAndHeadUseTheIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := newPool(t, 1)
	store := eventstore.New(pool)
	if _, err := pool.Exec(ctx, `
		insert into events (event_id, aggregate_id, aggregate_type, event_type, version, payload)
		select gen_random_uuid(), 'user' || (g % 100) || '@okbank', 'account', 'AccountCredited', g / 100 + 1, '{}'
		from generate_series(0, 99999) as g`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `vacuum analyze events`); err != nil {
		t.Fatal(err)
	}
	before := scans(t, pool)

	waitFor(t, "the seeded events to pass the horizon", func() bool {
		evs, err := store.ReadLog(ctx, eventstore.Start, 100)
		if err != nil {
			t.Fatal(err)
		}
		return len(evs) == 100
	})
	evs, err := store.ReadLog(ctx, eventstore.Position{TxID: 1, GlobalPosition: 50_000}, 100)
	if err != nil || len(evs) != 100 {
		t.Fatalf("ReadLog = %d events, %v", len(evs), err)
	}
	if _, _, err := store.Head(ctx); err != nil {
		t.Fatal(err)
	}

	after := scans(t, pool)
	if after.seq != before.seq {
		t.Errorf("ReadLog and Head made %d sequential scans of events, want none (index scans: %d)",
			after.seq-before.seq, after.idx-before.idx)
	}
	if after.idx == before.idx {
		t.Error("ReadLog and Head made no index scan of events")
	}
}

type scanCounts struct{ seq, idx int64 }

func scans(t *testing.T, pool *pgxpool.Pool) scanCounts {
	t.Helper()
	ctx := context.Background()
	// The backend publishes its counters when next idle; then a new statement reads them.
	if _, err := pool.Exec(ctx, `select pg_stat_force_next_flush()`); err != nil {
		t.Fatal(err)
	}
	var c scanCounts
	if err := pool.QueryRow(ctx, `select seq_scan, coalesce(idx_scan, 0) from pg_stat_user_tables where relname = 'events'`).
		Scan(&c.seq, &c.idx); err != nil {
		t.Fatal(err)
	}
	return c
}

// A group's reads take arrays as long as a log batch of steps makes (hundreds of ids and streams), run
// many times a second: each must stay index probes, never a scan of the whole events table, whatever plan
// the server caches for it.
func TestGroupReadsUseTheIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := newPool(t, 1)
	store := eventstore.New(pool)
	if _, err := pool.Exec(ctx, `
		insert into events (event_id, aggregate_id, aggregate_type, event_type, version, payload)
		select gen_random_uuid(), 'user' || (g % 1000) || '@bank', 'account', 'Deposited', g / 1000 + 1, '{"amount": 1}'
		from generate_series(0, 99999) as g`); err != nil {
		t.Fatal(err)
	}
	// No ANALYZE: a server without autovacuum (or before it runs) plans with no statistics, and the scan
	// showed up exactly there.
	var ids []uuid.UUID
	if err := pool.QueryRow(ctx, `select array_agg(event_id) from (select event_id from events limit 600) e`).Scan(&ids); err != nil {
		t.Fatal(err)
	}
	before := scans(t, pool)
	// More than five runs, so that the server has planned a generic plan for each statement too.
	for round := range 8 {
		ops := make([]*eventstore.Op, 0, 300)
		for i := range 300 {
			o := op(fmt.Sprintf("user%d@bank", (round*300+i)%1000), uuid.Nil,
				func(balance, int) ([]eventstore.NewEvent, error) { return nil, nil })
			o.Needs = ids[i*2 : i*2+2]
			o.Origins = []string{fmt.Sprintf("user%d@bank", (i+500)%1000)}
			ops = append(ops, o)
		}
		if _, err := store.ExecuteAll(ctx, ops); err != nil {
			t.Fatal(err)
		}
	}
	after := scans(t, pool)
	if after.seq != before.seq {
		t.Errorf("groups made %d sequential scans of events, want none (index scans: %d)",
			after.seq-before.seq, after.idx-before.idx)
	}
}
