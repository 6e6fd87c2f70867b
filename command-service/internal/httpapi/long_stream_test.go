package httpapi_test

import (
	"context"
	"testing"

	"upi/command-service/internal/app"
	"upi/shared/contract/money"
	"upi/shared/platform/eventstore"
)

// seedDeposits appends n FundsDeposited of 100 paise to an opened account in one statement, each with
// its correct balance_after, as if n deposits had been made.
func seedDeposits(tb testing.TB, e *env, vpa string, n int) {
	tb.Helper()
	_, err := e.pool.Exec(context.Background(), `
		insert into events (event_id, aggregate_id, aggregate_type, event_type, version, payload, metadata)
		select gen_random_uuid(), $1::text, 'account', 'FundsDeposited', g + 1,
		       jsonb_build_object('vpa', $1::text, 'amount_paise', 100, 'reference', 'seed-' || g,
		                          'balance_after_paise', 100 * g),
		       '{"schema_version": 1}'
		from generate_series(1, $2::int) g`, vpa, n)
	if err != nil {
		tb.Fatalf("seed %d deposits: %v", n, err)
	}
}

// TestLongAccountLoadsFromSnapshot: an account with 100k events is loaded from its snapshot and the short
// tail after it, not from 100k rows. The proof: the snapshot is a cache that may be rewritten, so a marker
// written into it shows up in the loaded state only if loading read the snapshot. Under the race detector
// the stream is 10k events long, because the one cold fold of 100k takes longer than a command may.
func TestLongAccountLoadsFromSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 100k events")
	}
	e := newEnv(t)
	e.openAccount("psp-a", "whale@okbank")
	n := 100_000
	if raceDetector {
		n = 10_000
	}
	seedDeposits(t, e, "whale@okbank", n)
	e.deposit("psp-a", "whale@okbank", 1, "first") // folds 100k events once, and snapshots them
	if b := e.account("whale@okbank").Balance; b != money.Paise(100*n+1) {
		t.Fatalf("balance %d, want %d", b, 100*n+1)
	}

	var version int
	if err := e.pool.QueryRow(context.Background(),
		`select version from snapshots where aggregate_id = 'whale@okbank'`).Scan(&version); err != nil {
		t.Fatalf("no snapshot of a %d-event account: %v", n, err)
	}
	if version != n+2 {
		t.Fatalf("snapshot at version %d, want %d", version, n+2)
	}
	if _, err := e.pool.Exec(context.Background(),
		`update snapshots set state = jsonb_set(state, '{holder_name}', '"from-the-snapshot"') where aggregate_id = 'whale@okbank'`); err != nil {
		t.Fatal(err)
	}
	e.deposit("psp-a", "whale@okbank", 1, "second")
	a, v, err := eventstore.LoadState(context.Background(), e.store, app.AccountAggregate(), "whale@okbank")
	if err != nil {
		t.Fatal(err)
	}
	if a.Holder != "from-the-snapshot" || v != n+3 || a.Balance != money.Paise(100*n+2) {
		t.Fatalf("loaded %+v at version %d: not from the snapshot plus its tail", a, v)
	}
}
