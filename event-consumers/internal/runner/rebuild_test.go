package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/event-consumers/internal/adapters/postgres/projections"
	"upi/event-consumers/internal/app/settlement"
	"upi/event-consumers/internal/runner"
	"upi/event-consumers/internal/workload"
	"upi/shared/platform/eventstore"
	"upi/testenv"
)

// A rebuild while writers append and the live worker applies: afterwards the read models still match the
// workload exactly, and a second rebuild (live worker still running) yields the same tables row for row.
// The same with the accounts and payments projections in two partitions each.
func TestRebuildWhileLiveEqualsLiveRowForRow(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2} {
		t.Run("partitions="+strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			rebuildWhileLive(t, n)
		})
	}
}

func rebuildWhileLive(t *testing.T, partitions int) {
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	bank := workload.New(eventstore.New(pool))
	vpas := openAccounts(t, ctx, bank, 10)
	// The settlement projection's cycles do not close within the test (a grace of an hour): a cycle's
	// closed_at is the time of the batch that closes it, which a rebuild cuts elsewhere.
	settle := projections.Settlement{Schedule: settlement.Default(), Grace: time.Hour}
	projs := []runner.Projection{projections.Accounts{}, projections.Payments{}, settle}
	opts := fastOpts()
	opts.Partitions = partitions
	start(t, pool, opts, projections.Accounts{}, projections.Payments{}, settle)
	if err := bank.Random(ctx, rand.New(rand.NewPCG(1, 2)), vpas, 80); err != nil {
		t.Fatal(err)
	}

	stop := payInBackground(t, ctx, bank, vpas, 9)
	for _, p := range projs {
		if _, err := runner.RebuildPartitioned(ctx, pool, testLog(t), p, 37, partitions); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	waitCaughtUp(t, pool, "accounts", "payments", "settlement")
	if err := workload.Verify(ctx, pool, bank.Expected()); err != nil {
		t.Fatalf("after a rebuild under load: %v", err)
	}

	var tables []string
	for _, p := range projs {
		tables = append(tables, p.Tables()...)
	}
	for _, tb := range tables {
		if _, err := pool.Exec(ctx, `create table snap_`+tb+` as select * from `+tb); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range projs {
		res, err := runner.RebuildPartitioned(ctx, pool, testLog(t), p, 0, partitions)
		if err != nil {
			t.Fatal(err)
		}
		if res.Events == 0 {
			t.Fatal("rebuild replayed nothing")
		}
	}
	for _, tb := range tables {
		var live, diff int
		if err := pool.QueryRow(ctx, `select (select count(*) from `+tb+`), (select count(*) from (
			(select * from `+tb+` except all select * from snap_`+tb+`)
			union all
			(select * from snap_`+tb+` except all select * from `+tb+`)) d)`).Scan(&live, &diff); err != nil {
			t.Fatal(err)
		}
		// The workload makes no refunds, collect requests or withdrawals, and leaves no movement pending:
		// those tables must match too, empty as they are.
		if diff != 0 || (live == 0 && tb != "refunds" && tb != "collect_requests" && tb != "withdrawals" &&
			tb != "settlement_pending") {
			t.Errorf("table %s: %d rows, %d differ from the live projection's", tb, live, diff)
		}
	}
	// The rebuilt tables keep their storage parameters (db/migrations/00010_projection_keys.sql).
	var params []string
	if err := pool.QueryRow(ctx, `select coalesce(reloptions, '{}') from pg_class where oid = 'public.payments'::regclass`).Scan(&params); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(params, "fillfactor=80") {
		t.Errorf("rebuilt payments has storage parameters %v, want fillfactor=80", params)
	}
}

// A rebuild that meets an event it cannot apply fails, naming it, and leaves the live tables serving.
func TestRebuildFailsLoudlyAndKeepsLiveTables(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	bank := workload.New(eventstore.New(pool))
	openAccounts(t, ctx, bank, 3)
	stop := start(t, pool, fastOpts(), projections.Accounts{})
	waitCaughtUp(t, pool, "accounts")
	stop()

	bad := uuid.New()
	if _, err := pool.Exec(ctx, `insert into events (event_id, aggregate_id, aggregate_type, event_type, version, payload)
		values ($1, 'user0@okbank', 'account', 'AccountFrozen', 3, '{}')`, bad); err != nil {
		t.Fatal(err)
	}
	waitVisible(t, pool, bad)
	_, err := runner.Rebuild(ctx, pool, testLog(t), projections.Accounts{}, 0)
	if err == nil || !strings.Contains(err.Error(), bad.String()) {
		t.Fatalf("rebuild error %v, want one naming event %s", err, bad)
	}
	if err := workload.VerifyBalances(ctx, pool, bank.Expected()); err != nil {
		t.Fatalf("live tables after a failed rebuild: %v", err)
	}
	var shadows int
	if err := pool.QueryRow(ctx, `select count(*) from pg_namespace where nspname like 'rebuild_%'`).Scan(&shadows); err != nil {
		t.Fatal(err)
	}
	if shadows != 0 {
		t.Fatalf("%d shadow schemas left behind", shadows)
	}
	if _, err := runner.Rebuild(ctx, pool, testLog(t), projections.Accounts{}, 0); errors.Is(err, runner.ErrRebuildRunning) {
		t.Fatal("the failed rebuild's lock was not released")
	}
}

// waitVisible waits until the event is below the log horizon, which other sessions of a shared server
// may hold back for a while.
func waitVisible(t *testing.T, pool *pgxpool.Pool, id uuid.UUID) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var visible bool
		if err := pool.QueryRow(context.Background(), `select tx_id < pg_snapshot_xmin(pg_current_snapshot())
			from events where event_id = $1`, id).Scan(&visible); err != nil {
			t.Fatal(err)
		}
		if visible {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("event never came below the horizon")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A log written before the UPI fields existed (no account type, no upi_txn_id, no RRN, no payee kind:
// the JSON below is what those versions stored) rebuilds into read models that say what they said then,
// with the new columns at their defaults: a PERSON account, an upi_txn_id derived from the payment id,
// no RRN.
func TestRebuildFromALogOlderThanTheUPIFields(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	store := eventstore.New(pool)
	pid := uuid.New()
	old := []struct {
		typ, stream, agg, payload string
		version                   int
	}{
		{"AccountOpened", "old.a@okbank", "account", `{"vpa":"old.a@okbank","holder_name":"A","owner_client_id":"psp"}`, 1},
		{"AccountOpened", "old.b@okbank", "account", `{"vpa":"old.b@okbank","holder_name":"B","owner_client_id":"psp"}`, 1},
		{"FundsDeposited", "old.a@okbank", "account", `{"vpa":"old.a@okbank","amount_paise":900,"reference":"r","balance_after_paise":900}`, 2},
		{"PaymentInitiated", pid.String(), "payment", `{"payment_id":"` + pid.String() + `","payer_vpa":"old.a@okbank","payee_vpa":"old.b@okbank","amount_paise":300,"client_id":"psp"}`, 1},
		{"AccountDebited", "old.a@okbank", "account", `{"vpa":"old.a@okbank","payment_id":"` + pid.String() + `","amount_paise":300,"counterparty_vpa":"old.b@okbank","balance_after_paise":600}`, 3},
		{"AccountCredited", "old.b@okbank", "account", `{"vpa":"old.b@okbank","payment_id":"` + pid.String() + `","amount_paise":300,"counterparty_vpa":"old.a@okbank","balance_after_paise":300}`, 2},
		{"PaymentCompleted", pid.String(), "payment", `{"payment_id":"` + pid.String() + `"}`, 2},
	}
	for _, e := range old {
		if _, err := store.Append(ctx, e.agg, e.stream, e.version-1, []eventstore.NewEvent{{
			ID: uuid.New(), Type: e.typ, Data: json.RawMessage(e.payload), Metadata: json.RawMessage(`{"schema_version":1}`),
		}}); err != nil {
			t.Fatalf("append %s: %v", e.typ, err)
		}
	}
	// A rebuild replays what is below the log's horizon; wait until the old log is.
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs, err := store.ReadLog(ctx, eventstore.Start, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == len(old) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d old events visible below the horizon", len(evs), len(old))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range []runner.Projection{projections.Accounts{}, projections.Payments{}} {
		if _, err := runner.Rebuild(ctx, pool, testLog(t), p, 100); err != nil {
			t.Fatalf("rebuild %s from the old log: %v", p.Name(), err)
		}
	}
	var typ string
	var mcc *string
	var balance int64
	if err := pool.QueryRow(ctx, `select type, mcc, balance_paise from accounts where vpa = 'old.a@okbank'`).
		Scan(&typ, &mcc, &balance); err != nil || typ != "PERSON" || mcc != nil || balance != 600 {
		t.Fatalf("old account = %s %v %d (%v), want a PERSON without mcc holding 600", typ, mcc, balance, err)
	}
	var status string
	var txn, rrn *string
	if err := pool.QueryRow(ctx, `select status, upi_txn_id, rrn from payments where payment_id = $1`, pid).
		Scan(&status, &txn, &rrn); err != nil || status != "COMPLETED" || rrn != nil {
		t.Fatalf("old payment = %s txn %v rrn %v (%v), want COMPLETED without an rrn", status, txn, rrn, err)
	}
	if want := "UPI" + strings.ReplaceAll(pid.String(), "-", ""); txn != nil && *txn != want {
		t.Fatalf("old payment's upi_txn_id = %s, want %s (derived from its id)", *txn, want)
	}
	var moves int
	if err := pool.QueryRow(ctx, `select count(*) from account_transactions where rrn is null`).Scan(&moves); err != nil || moves != 3 {
		t.Fatalf("%d old money movements without an rrn (%v), want 3", moves, err)
	}
}
