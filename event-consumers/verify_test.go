package main_test

// `event-consumers verify` as an operator runs it: the real binary against a real database, its lines and
// its exit code, on healthy books and after a superuser forged an event straight into the log.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/event-consumers/internal/app/ledger/ledgertest"
	"upi/event-consumers/internal/workload"
	"upi/shared/platform/eventstore"
	"upi/testenv"
)

// runConsumers runs bin/event-consumers with args against dbURL and returns its stdout, stderr and exit
// code.
func runConsumers(t *testing.T, dbURL string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runConsumersWith(t, dbURL, nil, args...)
}

// runConsumersWith is runConsumers with env added to the process's environment.
func runConsumersWith(t *testing.T, dbURL string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Binary(t, "event-consumers"), args...)
	cmd.Env = append(append(os.Environ(), "DATABASE_URL="+dbURL, "LOG_LEVEL=warn", "UPI_ENV=development"), env...)
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run event-consumers %v: %v", args, err)
	}
	return out.String(), errs.String(), code
}

// waitBelowHorizon waits until the last event appended is below the log's horizon, which a transaction
// of another test in the cluster may hold back for a moment: verify reads only below it.
func waitBelowHorizon(t *testing.T, pool *pgxpool.Pool) eventstore.Position {
	t.Helper()
	ctx := context.Background()
	last, err := workload.LastPosition(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		head, _, err := eventstore.Head(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		if head == last {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("the horizon stayed before %s", last.Token())
		}
	}
}

func TestVerifyCommandPassesHealthyBooksAndNamesAForgedCredit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the event-consumers binary; skipped with -short")
	}
	t.Parallel()
	dbURL := testenv.Postgres(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	books := ledgertest.New(eventstore.New(pool))
	for _, vpa := range []string{"alice@okbank", "bob@okbank"} {
		if err := books.Open(ctx, vpa, "psp"); err != nil {
			t.Fatal(err)
		}
		if _, err := books.Deposit(ctx, vpa, "top-up", 5000); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := books.Pay(ctx, "alice@okbank", "bob@okbank", 1200, ledgertest.Completed); err != nil {
		t.Fatal(err)
	}
	if _, err := books.Withdraw(ctx, "bob@okbank", "psp", "cash", 6000); err != nil {
		t.Fatal(err)
	}
	waitBelowHorizon(t, pool)
	// The migrations grant upi_consumers CREATE on the database they run in (a rebuild makes a schema); a
	// test's database is a copy of a migrated template, which database grants do not follow.
	if _, err := pool.Exec(ctx, `do $$ begin execute format('grant create on database %I to upi_consumers',
		current_database()); end $$`); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := runConsumers(t, dbURL, "rebuild", "all"); code != 0 {
		t.Fatalf("rebuild all: exit %d\n%s%s", code, out, errs)
	}
	// Rebuilt again for consumers in partitions: the swap sets the partitions' rows too, as the consumers'
	// role may.
	if out, errs, code := runConsumersWith(t, dbURL, []string{"CONSUMER_PARTITIONS=2"}, "rebuild", "all"); code != 0 {
		t.Fatalf("rebuild all with partitions: exit %d\n%s%s", code, out, errs)
	}
	var parts int
	if err := pool.QueryRow(ctx, `select count(*) from projection_checkpoints where name in
		('accounts#0/2', 'accounts#1/2', 'payments#0/2', 'payments#1/2')`).Scan(&parts); err != nil {
		t.Fatal(err)
	}
	if parts != 4 {
		t.Fatalf("%d partition checkpoints after a rebuild with partitions, want 4", parts)
	}

	out, errs, code := runConsumers(t, dbURL, "verify")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	t.Logf("verify on healthy books:\n%s", out)
	if code != 0 || len(lines) != 9 {
		t.Fatalf("verify: exit %d, %d lines, want 0 and 9\n%s%s", code, len(lines), out, errs)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "ok   ") {
			t.Errorf("line %q does not hold", l)
		}
	}

	// A superuser appends a credit of money that nobody paid: a careful forgery, the next version of the
	// account with the balance it would have, for a payment that never was.
	forged := uuid.New()
	if _, err := pool.Exec(ctx, `
		insert into events (event_id, aggregate_id, aggregate_type, event_type, version, payload)
		select $1, 'alice@okbank', 'account', 'AccountCredited', max(version) + 1,
			jsonb_build_object('vpa', 'alice@okbank', 'payment_id', $2::text, 'amount_paise', 700,
				'counterparty_vpa', 'bob@okbank', 'balance_after_paise', 3800 + 700)
		from events where aggregate_id = 'alice@okbank'`, forged, uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	var at eventstore.Position
	if err := pool.QueryRow(ctx, `select tx_id::text::bigint, global_position from events where event_id = $1`,
		forged).Scan(&at.TxID, &at.GlobalPosition); err != nil {
		t.Fatal(err)
	}
	waitBelowHorizon(t, pool)
	out, errs, code = runConsumers(t, dbURL, "verify")
	t.Logf("verify after the forgery:\n%s", out)
	if code != 1 {
		t.Fatalf("verify after a forged credit: exit %d, want 1\n%s%s", code, out, errs)
	}
	want := "FAIL zero-sum: broken at 1 of "
	wantAt := fmt.Sprintf("first: the sum is 700 paise after the transaction ending at %s", at.Token())
	found := false
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, want) && strings.Contains(l, wantAt) {
			found = true
		}
	}
	if !found {
		t.Errorf("no line %q...%q in\n%s", want, wantAt, out)
	}
	if !strings.Contains(out, "FAIL in-flight: ") || !strings.Contains(out, "AccountCredited alice@okbank at "+at.Token()) {
		t.Errorf("the in-flight check does not name the forged credit:\n%s", out)
	}

	// A database out of reach is neither a pass nor a failure of the books: exit 2.
	_, errs, code = runConsumers(t, "postgres://postgres@127.0.0.1:1/upi?sslmode=disable&connect_timeout=2", "verify")
	if code != 2 || !strings.Contains(errs, "verify:") {
		t.Errorf("verify without a database: exit %d, stderr %q; want 2 and the reason", code, errs)
	}
	if _, _, code = runConsumers(t, dbURL, "verify", "-stuck-after", "soon"); code != 2 {
		t.Errorf("verify with a bad flag: exit %d, want 2", code)
	}
}
