package postgres_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"upi/event-consumers/internal/adapters/postgres"
	"upi/shared/contract/projection"
	"upi/testenv"
)

// The closer closes a cycle whose close time has passed only once the settlement projection has applied
// every committed event, and leaves cycles alone while none is due.
func TestSettlementCloserClosesDueCyclesOnlyWhenTheProjectionIsCaughtUp(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	closer := postgres.NewSettlementCloser(pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mustExec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	closeRound := func() int64 {
		t.Helper()
		n, err := closer.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	open := func(id string) bool {
		t.Helper()
		var closed bool
		if err := pool.QueryRow(ctx, `select closed from settlement_cycles where cycle_id = $1`, id).Scan(&closed); err != nil {
			t.Fatal(err)
		}
		return !closed
	}

	mustExec(`insert into settlement_clock (id, seen_at) values (1, now() - interval '1 hour')`)
	mustExec(`insert into settlement_cycles (cycle_id, starts_at, ends_at, closes_at) values
		('past', now() - interval '3 hours', now() - interval '2 hours', now() - interval '1 hour'),
		('later', now() - interval '1 hour', now() + interval '1 hour', now() + interval '2 hours')`)
	// An event the projection has not applied: the closer waits for it.
	mustExec(`insert into events (event_id, aggregate_id, aggregate_type, event_type, version, payload)
		values (gen_random_uuid(), 'a@x', 'account', 'AccountOpened', 1, '{}')`)
	mustExec(`insert into projection_checkpoints (name) values ($1) on conflict (name) do nothing`, projection.Settlement)
	// The closer counts only committed events below the horizon, which other tests' transactions (the
	// cluster's) may hold back for a moment: wait for the event to be there, as a consumer would.
	for deadline := time.Now().Add(10 * time.Second); ; {
		var below bool
		if err := pool.QueryRow(ctx, `select bool_and(tx_id < pg_snapshot_xmin(pg_current_snapshot())) from events`).Scan(&below); err != nil {
			t.Fatal(err)
		}
		if below {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the event stayed above the horizon for 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := closeRound(); n != 0 || !open("past") {
		t.Fatalf("closed %d cycles with the projection behind the log", n)
	}
	// Caught up: the due cycle closes, the other stays open.
	mustExec(`update projection_checkpoints c set tx_id = e.tx_id, global_position = e.global_position
		from (select tx_id, global_position from events order by tx_id desc, global_position desc limit 1) e
		where c.name = $1`, projection.Settlement)
	if n := closeRound(); n != 1 || open("past") || !open("later") {
		t.Fatalf("closed %d cycles once caught up; past open %v, later open %v", n, open("past"), open("later"))
	}
	if n := closeRound(); n != 0 {
		t.Fatalf("closed %d cycles with none due", n)
	}
}
