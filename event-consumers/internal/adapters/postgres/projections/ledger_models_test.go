package projections_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/event-consumers/internal/adapters/postgres/projections"
	"upi/event-consumers/internal/app/ledger/ledgertest"
	"upi/event-consumers/internal/runner"
	"upi/event-consumers/internal/workload"
	"upi/shared/contract/events"
	"upi/shared/platform/eventstore"
	"upi/testenv"
)

// applyLog applies the whole log to p's tables in batches of size events, one transaction each, as the
// runner does (a small size cuts streams and transactions across batches). It reads below the horizon,
// which another test's transaction in the cluster may hold back for a while: it waits for the last event.
func applyLog(t *testing.T, pool *pgxpool.Pool, p runner.Projection, size int) {
	t.Helper()
	ctx := context.Background()
	last, err := workload.LastPosition(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for pos := eventstore.Start; pos != last; {
		batch, err := eventstore.ReadLog(ctx, pool, pos, size)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the log's horizon stayed before %s", last.Token())
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return p.Apply(ctx, tx, batch) }); err != nil {
			t.Fatalf("apply batch after %s: %v", pos.Token(), err)
		}
		pos = batch[len(batch)-1].Position
	}
}

// rows dumps a query's rows as text lines.
func rows(t *testing.T, pool *pgxpool.Pool, sql string) []string {
	t.Helper()
	rs, err := pool.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	var out []string
	for rs.Next() {
		vals, err := rs.Values()
		if err != nil {
			t.Fatal(err)
		}
		cols := make([]string, len(vals))
		for i, v := range vals {
			cols[i] = fmt.Sprint(v)
		}
		out = append(out, strings.Join(cols, " "))
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func one[T any](t *testing.T, pool *pgxpool.Pool, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// Deposits and withdrawals move the settlement shards, withdrawals get their rows (a completed one with its
// RRN and movement, a rejected one FAILED with only the account's version moved), and a rebuild of the
// log yields the same tables row for row.
func TestAccountsProjectionBuildsWithdrawalsAndSettlementAccounts(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	books := ledgertest.New(eventstore.New(pool))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []struct{ vpa, owner string }{{"alice@okbank", "psp-a"}, {"bob@okbank", "psp-b"}, {"carol@paybank", "psp-a"}} {
		must(books.Open(ctx, a.vpa, a.owner))
	}
	_, err := books.Deposit(ctx, "alice@okbank", "top-1", 10000)
	must(err)
	_, err = books.Deposit(ctx, "bob@okbank", "top-1", 5000)
	must(err)
	_, err = books.Deposit(ctx, "carol@paybank", "top-1", 700)
	must(err)
	_, err = books.Pay(ctx, "alice@okbank", "carol@paybank", 2500, ledgertest.Completed)
	must(err)
	done, err := books.Withdraw(ctx, "alice@okbank", "psp-a", "cash-1", 3000)
	must(err)
	refused, err := books.Withdraw(ctx, "bob@okbank", "psp-b", "cash-1", 9000)
	must(err)
	emptied, err := books.Withdraw(ctx, "carol@paybank", "psp-a", "cash-1", 3200)
	must(err)
	if done.RRN == "" || refused.RRN != "" {
		t.Fatalf("books decided %+v and %+v", done, refused)
	}

	// Live, in batches of 3 events: streams and transactions are cut across batches.
	applyLog(t, pool, projections.Accounts{}, 3)

	if got := rows(t, pool, `select vpa, owner_client_id, amount_paise, reference, status, coalesce(failure_code, '-'),
		coalesce(rrn, '-') from withdrawals order by vpa`); strings.Join(got, "\n") != strings.Join([]string{
		"alice@okbank psp-a 3000 cash-1 COMPLETED - " + done.RRN,
		"bob@okbank psp-b 9000 cash-1 FAILED INSUFFICIENT_FUNDS -",
		"carol@paybank psp-a 3200 cash-1 COMPLETED - " + emptied.RRN,
	}, "\n") {
		t.Errorf("withdrawals:\n%s", strings.Join(got, "\n"))
	}
	if id := one[string](t, pool, `select withdrawal_id::text from withdrawals where vpa = 'alice@okbank'`); id != done.ID.String() {
		t.Errorf("alice's withdrawal is %s, want %s", id, done.ID)
	}
	// The bank's side: okbank paid out 15000 in deposits and got 3000 back; paybank paid 700, got 3200.
	banks := rows(t, pool, `select bank, sum(balance_paise)::bigint, sum(deposits)::bigint, sum(withdrawals)::bigint from settlement_accounts
		group by bank order by bank`)
	if strings.Join(banks, "|") != "okbank -12000 2 1|paybank 2500 1 1" {
		t.Errorf("settlement accounts by bank: %v", banks)
	}
	var shardVersions int
	if shardVersions = one[int](t, pool, `select sum(version)::int from settlement_accounts`); shardVersions != 5 {
		t.Errorf("settlement shards' versions add up to %d, want 5 (one per move)", shardVersions)
	}
	// Movements: the completed withdrawal is a WITHDRAWAL row with its id and RRN; the rejection is none,
	// but moves bob's version.
	got := rows(t, pool, `select kind, amount_paise, balance_after_paise, withdrawal_id::text, rrn, reference
		from account_transactions where vpa = 'alice@okbank' and kind = 'WITHDRAWAL'`)
	if len(got) != 1 || got[0] != "WITHDRAWAL 3000 4500 "+done.ID.String()+" "+done.RRN+" cash-1" {
		t.Errorf("alice's withdrawal movements: %v", got)
	}
	if n := one[int](t, pool, `select count(*)::int from account_transactions where vpa = 'bob@okbank'`); n != 1 {
		t.Errorf("bob has %d movements, want only his deposit", n)
	}
	if v := one[int](t, pool, `select version from accounts where vpa = 'bob@okbank'`); v != 3 {
		t.Errorf("bob's account is at version %d, want 3 (opened, deposit, rejected withdrawal)", v)
	}
	// Payments ignore money entering and leaving: the payments projection applies the same log.
	applyLog(t, pool, projections.Payments{}, 4)
	if n := one[int](t, pool, `select count(*)::int from payments where status = 'COMPLETED'`); n != 1 {
		t.Errorf("%d completed payments, want 1", n)
	}

	// A rebuild (blue/green, every table of the projection) gives the same rows.
	tables := projections.Accounts{}.Tables()
	for _, tb := range tables {
		if _, err := pool.Exec(ctx, `create table snap_`+tb+` as select * from `+tb); err != nil {
			t.Fatal(err)
		}
	}
	res, err := runner.Rebuild(ctx, pool, slog.New(slog.NewTextHandler(io.Discard, nil)), projections.Accounts{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events == 0 {
		t.Fatal("rebuild replayed nothing")
	}
	for _, tb := range tables {
		live := one[int](t, pool, `select count(*)::int from `+tb)
		diff := one[int](t, pool, `select count(*)::int from ((select * from `+tb+` except all select * from snap_`+tb+`)
			union all (select * from snap_`+tb+` except all select * from `+tb+`)) d`)
		if live == 0 || diff != 0 {
			t.Errorf("table %s: %d rows after the rebuild, %d differ from the live build's", tb, live, diff)
		}
	}
}

// settlement is an event of a settlement shard, built like event's.
func settlement(stream string, version int, payload events.Payload) eventstore.Event {
	e := event(stream, version, payload)
	e.AggregateType = events.AggregateSettlement
	return e
}

func settled(stream, bank string, version int, amount, after int64) eventstore.Event {
	return settlement(stream, version, events.SettlementDebitedV1{SettlementMove: events.SettlementMove{
		Bank: bank, VPA: "a@" + bank, Leg: "x", AmountPaise: amount, BalanceAfterPaise: after}})
}

// The settlement shards are guarded like accounts: by version, by recorded balance, and by their name.
func TestSettlementShardsRefuseWhatDoesNotFollow(t *testing.T) {
	t.Parallel()
	const s = "settlement:okbank:01"
	cases := []struct {
		name    string
		batches [][]eventstore.Event
		want    string
	}{
		{"moves continued across batches", [][]eventstore.Event{{settled(s, "okbank", 1, 5, -5)}, {settled(s, "okbank", 2, 7, -12)}}, ""},
		{"a first move that is not version 1", [][]eventstore.Event{{settled(s, "okbank", 2, 5, -5)}}, "no earlier move"},
		{"a version skipped across batches", [][]eventstore.Event{{settled(s, "okbank", 1, 5, -5)}, {settled(s, "okbank", 3, 7, -12)}}, "ordering violation"},
		{"a version skipped in a batch", [][]eventstore.Event{{settled(s, "okbank", 1, 5, -5), settled(s, "okbank", 3, 7, -12)}}, "ordering violation"},
		{"a move applied twice", [][]eventstore.Event{{settled(s, "okbank", 1, 5, -5)}, {settled(s, "okbank", 1, 5, -5)}}, "settlement_accounts_pkey"},
		{"a balance that does not add up", [][]eventstore.Event{{settled(s, "okbank", 1, 5, -5), settled(s, "okbank", 2, 5, -11)}}, "balance after is -10"},
		{"a bank that is not the shard's", [][]eventstore.Event{{settled(s, "paybank", 1, 5, -5)}}, "names bank"},
		{"a stream that is not a shard", [][]eventstore.Event{{settled("settlement:okbank:1", "okbank", 1, 5, -5)}}, "not a settlement stream"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := apply(t, projections.Accounts{}, c.batches...)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}
