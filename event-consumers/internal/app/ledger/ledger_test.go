package ledger_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/event-consumers/internal/adapters/postgres/projections"
	"upi/event-consumers/internal/app/ledger"
	"upi/event-consumers/internal/app/ledger/ledgertest"
	"upi/event-consumers/internal/runner"
	"upi/event-consumers/internal/workload"
	"upi/shared/contract/events"
	"upi/shared/platform/eventstore"
	"upi/testenv"
)

// Each test writes a small real log through the event store (ledgertest, as the command service writes
// it), builds the read models with a real rebuild, and runs the check on the real database.

type fixture struct {
	t     *testing.T
	ctx   context.Context
	pool  *pgxpool.Pool
	store *eventstore.Store
	books *ledgertest.Books
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pool, _ := testenv.PostgresPool(t)
	store := eventstore.New(pool)
	return &fixture{t: t, ctx: context.Background(), pool: pool, store: store, books: ledgertest.New(store)}
}

func (f *fixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

// healthy writes books in which everything holds: two banks, deposits, payments of every outcome, a
// refund, a completed and a rejected withdrawal. It returns the id of a completed payment.
func (f *fixture) healthy() string {
	f.t.Helper()
	for _, vpa := range []string{"alice@okbank", "bob@okbank", "shop@paybank"} {
		f.must(f.books.Open(f.ctx, vpa, "psp-"+vpa[:1]))
	}
	for i, vpa := range []string{"alice@okbank", "bob@okbank"} {
		_, err := f.books.Deposit(f.ctx, vpa, "top-up", int64(10000*(i+1)))
		f.must(err)
	}
	paid, err := f.books.Pay(f.ctx, "alice@okbank", "shop@paybank", 4000, ledgertest.Completed)
	f.must(err)
	_, err = f.books.Pay(f.ctx, "bob@okbank", "shop@paybank", 1500, ledgertest.Reversed)
	f.must(err)
	_, err = f.books.Pay(f.ctx, "alice@okbank", "bob@okbank", 99999, ledgertest.Rejected)
	f.must(err)
	_, err = f.books.Refund(f.ctx, paid, "alice@okbank", "shop@paybank", 1000, ledgertest.Completed)
	f.must(err)
	_, err = f.books.Withdraw(f.ctx, "shop@paybank", "psp-s", "cash-1", 2500)
	f.must(err)
	_, err = f.books.Withdraw(f.ctx, "alice@okbank", "psp-a", "cash-1", 50000)
	f.must(err)
	return paid
}

// rebuild builds both projections from the log (and sets their checkpoints), as `rebuild all` does.
func (f *fixture) rebuild() {
	f.t.Helper()
	f.waitHorizon()
	for _, p := range []runner.Projection{projections.Accounts{}, projections.Payments{}} {
		if _, err := runner.Rebuild(f.ctx, f.pool, slog.New(slog.NewTextHandler(io.Discard, nil)), p, 0); err != nil {
			f.t.Fatal(err)
		}
	}
}

// waitHorizon waits until every event appended is below the log's horizon: a transaction of another
// test in the cluster can hold it back for a moment, and the check reads only below it.
func (f *fixture) waitHorizon() eventstore.Position {
	f.t.Helper()
	last, err := workload.LastPosition(f.ctx, f.pool)
	f.must(err)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		head, _, err := eventstore.Head(f.ctx, f.pool)
		f.must(err)
		if head == last {
			return last
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("the horizon stayed before %s", last.Token())
		}
	}
}

// check runs the ledger check and returns its report, with each check by name.
func (f *fixture) check(opts ledger.Options) (ledger.Report, map[string]ledger.Check) {
	f.t.Helper()
	f.waitHorizon()
	rep, err := ledger.New(projections.NewLedgerStore(f.pool), opts).Run(f.ctx)
	f.must(err)
	byName := map[string]ledger.Check{}
	for _, c := range rep.Checks {
		byName[c.Name] = c
	}
	if len(byName) != 9 {
		f.t.Fatalf("%d checks, want 9: %v", len(byName), rep.Lines())
	}
	return rep, byName
}

// expectOnly asserts that exactly the named checks fail, each with a detail containing its string.
func expectOnly(t *testing.T, rep ledger.Report, failing map[string]string) {
	t.Helper()
	for _, c := range rep.Checks {
		want, shouldFail := failing[c.Name]
		switch {
		case shouldFail && c.OK:
			t.Errorf("%s holds, want it to fail: %s", c.Name, c.Detail)
		case shouldFail && !strings.Contains(c.Detail, want):
			t.Errorf("%s fails with %q, want it to say %q", c.Name, c.Detail, want)
		case !shouldFail && !c.OK:
			t.Errorf("%s fails: %s", c.Name, c.Detail)
		}
	}
	if rep.OK != (len(failing) == 0) {
		t.Errorf("report ok = %v with failing checks %v", rep.OK, failing)
	}
	if t.Failed() {
		t.Logf("report:\n%s", strings.Join(rep.Lines(), "\n"))
	}
}

func countTransactions(t *testing.T, pool *pgxpool.Pool) int {
	var n int
	if err := pool.QueryRow(context.Background(), `select count(distinct tx_id::text) from events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestHealthyBooksHoldEveryCheck(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.healthy()
	f.rebuild()
	rep, checks := f.check(ledger.Options{})
	expectOnly(t, rep, nil)
	last := f.waitHorizon()
	if rep.Position != last.Token() {
		t.Errorf("position %s, want the last event's %s", rep.Position, last.Token())
	}
	// What the operator reads: the transactions counted, the sum's parts, the counts of each kind.
	want := map[string]string{
		"zero-sum": fmt.Sprintf("sum 0 at every one of %d transaction boundaries, up to %s (accounts 27500, settlement -27500, in transit 0)",
			countTransactions(t, f.pool), last.Token()),
		"in-flight":                      "payments 3 terminal, 0 in flight; refunds 1 terminal, 0 in flight; withdrawals 2 terminal (1 completed, 1 failed); nothing in flight",
		"unique-rrn":                     "4 RRNs, each given once",
		"balances":                       "3 accounts and ",
		"projection accounts":            "3 rows, all equal",
		"projection payments":            "3 rows, all equal",
		"projection withdrawals":         "2 rows, all equal",
		"projection settlement_accounts": "rows, all equal",
	}
	for name, detail := range want {
		if !strings.Contains(checks[name].Detail, detail) {
			t.Errorf("%s: %q, want it to say %q", name, checks[name].Detail, detail)
		}
	}
}

// A deposit written without its settlement leg (before double entry, or forged) makes money out of
// nothing: the sum breaks at its transaction, and the check names where.
func TestZeroSumBreaksAtADepositWithoutItsLeg(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.healthy()
	evs, err := f.store.Append(f.ctx, events.AggregateAccount, "bob@okbank", eventstore.AnyVersion, []eventstore.NewEvent{{
		ID: uuid.New(), Type: events.FundsDeposited,
		Data: events.FundsDepositedV1{VPA: "bob@okbank", AmountPaise: 500, Reference: "legless", BalanceAfterPaise: 20000 - 1500 + 1500 + 500},
	}})
	f.must(err)
	_, err = f.books.Deposit(f.ctx, "alice@okbank", "later", 100) // the books go on; the break stays
	f.must(err)
	f.rebuild()
	rep, checks := f.check(ledger.Options{})
	expectOnly(t, rep, map[string]string{"zero-sum": fmt.Sprintf(
		"broken at 2 of %d transaction boundaries; first: the sum is 500 paise after the transaction ending at %s",
		countTransactions(t, f.pool), evs[0].Position.Token())})
	if !strings.Contains(checks["zero-sum"].Detail, "at the end the sum is 500") {
		t.Errorf("zero-sum: %s", checks["zero-sum"].Detail)
	}
}

// Money in transit counts in the sum while a payment or refund is under way; something in flight for
// longer than the threshold fails the in-flight check, naming the oldest.
func TestInFlightCountsInTheSumAndFailsWhenStuck(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	paid := f.healthy()
	stuck, err := f.books.Pay(f.ctx, "bob@okbank", "alice@okbank", 700, ledgertest.InFlight)
	f.must(err)
	_, err = f.books.Refund(f.ctx, paid, "alice@okbank", "shop@paybank", 200, ledgertest.InFlight)
	f.must(err)
	f.rebuild()

	rep, checks := f.check(ledger.Options{StuckAfter: time.Hour})
	expectOnly(t, rep, nil)
	for _, want := range []string{"payments 3 terminal, 1 in flight; refunds 1 terminal, 1 in flight",
		"oldest in flight: payment " + stuck} {
		if !strings.Contains(checks["in-flight"].Detail, want) {
			t.Errorf("in-flight: %q, want it to say %q", checks["in-flight"].Detail, want)
		}
	}
	if !strings.Contains(checks["zero-sum"].Detail, "in transit 900") {
		t.Errorf("zero-sum: %q, want the 900 paise in transit counted", checks["zero-sum"].Detail)
	}

	rep, _ = f.check(ledger.Options{StuckAfter: time.Nanosecond})
	expectOnly(t, rep, map[string]string{"in-flight": "oldest in flight: payment " + stuck})
}

// Each read model is compared with the replay at its own checkpoint: a projection that is behind is not a
// failure; a row that differs is, named.
func TestProjectionChecksNameTheRowThatDiffers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	paid := f.healthy()
	f.rebuild()
	// Behind: more books the projections have not applied.
	_, err := f.books.Deposit(f.ctx, "shop@paybank", "late", 300)
	f.must(err)
	_, err = f.books.Withdraw(f.ctx, "bob@okbank", "psp-b", "late", 100)
	f.must(err)
	rep, _ := f.check(ledger.Options{})
	expectOnly(t, rep, nil)

	for _, sql := range []string{
		`update accounts set balance_paise = balance_paise + 1 where vpa = 'bob@okbank'`,
		`delete from settlement_accounts where bank = 'paybank'`,
		`update payments set rrn = '000000000000' where payment_id = '` + paid + `'`,
		`update withdrawals set status = 'FAILED', failure_code = 'INSUFFICIENT_FUNDS' where vpa = 'shop@paybank'`,
	} {
		_, err := f.pool.Exec(f.ctx, sql)
		f.must(err)
	}
	rep, _ = f.check(ledger.Options{})
	expectOnly(t, rep, map[string]string{
		"projection accounts":            "first: bob@okbank is balance 20001, version 4 in the table, balance 20000, version 4 in the log",
		"projection settlement_accounts": "first: " + ledgertest.SettlementOf("shop@paybank") + " is absent in the table",
		"projection payments":            "first: " + paid + ` is status COMPLETED, failure_code "", rrn "000000000000" in the table`,
		"projection withdrawals":         "status FAILED",
	})
}

// An RRN given twice (here a withdrawal given a payment's) fails the unique-rrn check, naming both. The log
// refuses such an event since db/migrations/00011 (a unique index over the RRNs appended after it); a log
// written before it may hold repeats, which is what dropping the index here stands for.
func TestUniqueRRNFailsOnAnRRNGivenTwice(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, err := f.pool.Exec(f.ctx, `drop index if exists events_rrn_key`)
	f.must(err)
	paid := f.healthy()
	var rrn string
	f.must(f.pool.QueryRow(f.ctx, `select payload->>'rrn' from events where event_type = 'AccountDebited'
		and payload->>'payment_id' = $1`, paid).Scan(&rrn))
	w, err := f.books.WithdrawRRN(f.ctx, "bob@okbank", "psp-b", "dup", 100, rrn)
	f.must(err)
	f.rebuild()
	rep, _ := f.check(ledger.Options{})
	expectOnly(t, rep, map[string]string{"unique-rrn": fmt.Sprintf("RRN %s given to payment %s and to withdrawal %s", rrn, paid, w.ID)})
}

// A balance an event records that is not its stream's fold, and a stream version skipped, are named.
func TestBalancesAndStreamsNameTheEventThatBreaksThem(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.healthy()
	// A superuser's hand-written rows: a withdrawal recording the wrong balance (with its leg, so that
	// the sum holds), and a deposit that skips a version of the account.
	id := uuid.New()
	_, err := f.pool.Exec(f.ctx, `insert into events (event_id, aggregate_id, aggregate_type, event_type, version, payload) values
		($1, 'bob@okbank', 'account', 'FundsWithdrawn', 5, jsonb_build_object('withdrawal_id', $3::text, 'vpa', 'bob@okbank',
			'amount_paise', 100, 'reference', 'x', 'balance_after_paise', 7, 'rrn', '699999000001', 'settlement', $2::text, 'client_id', 'psp-b')),
		(gen_random_uuid(), $2::text, 'settlement', 'SettlementCredited', (select max(version) + 1 from events where aggregate_id = $2::text),
			jsonb_build_object('bank', 'okbank', 'vpa', 'bob@okbank', 'leg', $3::text, 'amount_paise', 100,
			'balance_after_paise', (select (payload->>'balance_after_paise')::bigint + 100 from events where aggregate_id = $2::text
				order by version desc limit 1)))`, id, ledgertest.SettlementOf("bob@okbank"), id.String())
	f.must(err)
	rep, _ := f.check(ledger.Options{})
	expectOnly(t, rep, map[string]string{
		"balances": "FundsWithdrawn bob@okbank v5 records balance 7, the fold gives 19900",
	})

	_, err = f.pool.Exec(f.ctx, `insert into events (event_id, aggregate_id, aggregate_type, event_type, version, payload) values
		(gen_random_uuid(), 'shop@paybank', 'account', 'AccountOpened', 9, '{"vpa": "shop@paybank", "holder_name": "x", "owner_client_id": "y"}')`)
	f.must(err)
	rep, _ = f.check(ledger.Options{})
	expectOnly(t, rep, map[string]string{
		"balances": "FundsWithdrawn bob@okbank v5",
		"streams":  "AccountOpened shop@paybank is version 9, expected 5",
	})
}
