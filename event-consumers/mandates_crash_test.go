package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/testenv"
)

// TestMandateExecutionsSurviveKills: mandates with debits falling due while the command service and the
// consumers are killed (SIGKILL) and restarted in turn. Every due debit runs exactly once: one ending
// (succeeded or failed) per notification, one payment per attempt, no attempt twice, a payer short of money
// retried exactly MANDATE_RETRIES times, and the money moved equal to the debits that succeeded; the
// ledger check holds.
func TestMandateExecutionsSurviveKills(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole system; skipped with -short")
	}
	dbURL := testenv.Postgres(t)
	redisURL := testenv.Redis(t)
	cmd := testenv.StartService(t, "command-service", map[string]string{"DATABASE_URL": dbURL,
		"LIMIT_DAILY_PAISE": "0", "LIMIT_DAILY_P2P_COUNT": "0", "LIMIT_NEW_ACCOUNT_PAISE": "0",
		"MANDATE_NOTICE": "1s", "MANDATE_RETRIES": "2", "MANDATE_RETRY_INTERVAL": "1s", "MANDATE_PEAK_WINDOWS": "none"})
	qry := testenv.StartService(t, "query-service", map[string]string{"DATABASE_URL": dbURL})
	cons := testenv.StartService(t, "event-consumers", map[string]string{"DATABASE_URL": dbURL, "COMMAND_SERVICE_URL": cmd.URL,
		"MANDATE_TIMER_EVERY": "200ms"})
	gw := testenv.StartService(t, "api-gateway", map[string]string{
		"REDIS_URL": redisURL, "COMMAND_SERVICE_URL": cmd.URL, "QUERY_SERVICE_URL": qry.URL,
		"API_KEYS": "payers=key-a,shop=key-b", "RATE_LIMIT_RPS": "1000000", "RATE_LIMIT_BURST": "1000000",
	})
	hc := &http.Client{Timeout: 10 * time.Second}
	payers, shop := &bankClient{base: gw.URL, key: "key-a", http: hc}, &bankClient{base: gw.URL, key: "key-b", http: hc}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	run := uuid.NewString()[:8]
	merchant := "shop." + run + "@bank"
	if st, b := shop.post(ctx, t, "/v1/accounts", "open-"+merchant, map[string]any{"vpa": merchant, "holder_name": "Shop",
		"type": "ENTITY", "mcc": "5411"}); st != 201 {
		t.Fatalf("open %s: %d %s", merchant, st, b)
	}
	const nPayers, debitsEach = 8, 3
	type debit struct{ id, mandate string }
	var debits []debit
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	until := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	for i := 0; i < nPayers; i++ {
		payer := fmt.Sprintf("payer%d.%s@bank", i, run)
		if st, b := payers.post(ctx, t, "/v1/accounts", "open-"+payer, map[string]any{"vpa": payer, "holder_name": "Payer"}); st != 201 {
			t.Fatalf("open %s: %d %s", payer, st, b)
		}
		if i%4 != 0 { // every fourth payer has no money: its debits are retried, then fail
			if st, b := payers.post(ctx, t, "/v1/accounts/"+payer+"/deposits", "fund-"+payer, map[string]any{"amount_paise": 100_000, "reference": "fund"}); st != 201 {
				t.Fatalf("fund %s: %d %s", payer, st, b)
			}
		}
		st, b := shop.post(ctx, t, "/v1/mandates", "mandate-"+payer, map[string]any{"payer_vpa": payer, "payee_vpa": merchant,
			"amount_paise": 5000, "amount_rule": "MAX", "frequency": "ASPRESENTED", "valid_from": from, "valid_until": until,
			"purpose": "Subscription"})
		var m struct {
			MandateID string `json:"mandate_id"`
		}
		if st != 201 || json.Unmarshal(b, &m) != nil {
			t.Fatalf("request mandate: %d %s", st, b)
		}
		if st, b := payers.post(ctx, t, "/v1/mandates/"+m.MandateID+"/approve", "approve-"+m.MandateID, nil); st != 200 {
			t.Fatalf("approve: %d %s", st, b)
		}
		for j := 0; j < debitsEach; j++ {
			at := time.Now().Add(2*time.Second + time.Duration(rand.IntN(8000))*time.Millisecond).UTC().Format(time.RFC3339Nano)
			st, b := shop.post(ctx, t, "/v1/mandates/"+m.MandateID+"/notifications", fmt.Sprintf("n-%s-%d", m.MandateID, j),
				map[string]any{"amount_paise": 1000 + 1000*j, "debit_at": at})
			var d struct {
				NotificationID string `json:"notification_id"`
			}
			if st != 201 || json.Unmarshal(b, &d) != nil {
				t.Fatalf("notify: %d %s", st, b)
			}
			debits = append(debits, debit{d.NotificationID, m.MandateID})
		}
	}

	// Chaos while the debits fall due: kill -9 the command service and the consumers in turn.
	chaosCtx, stopChaos := context.WithTimeout(ctx, 15*time.Second)
	defer stopChaos()
	var wg sync.WaitGroup
	kills := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for round := 0; ; round++ {
			select {
			case <-chaosCtx.Done():
				return
			case <-time.After(time.Duration(500+rand.IntN(700)) * time.Millisecond):
			}
			s := cmd
			if round%2 == 1 {
				s = cons
			}
			s.Kill()
			time.Sleep(time.Duration(50+rand.IntN(300)) * time.Millisecond)
			s.Start()
			kills++
		}
	}()
	wg.Wait()
	t.Logf("%d debits notified, %d kills", len(debits), kills)

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// Wait until every debit has ended, in the log.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var ended int
		if err := pool.QueryRow(ctx, `select count(*) from events where event_type in ('MandateDebitSucceeded', 'MandateDebitFailed')`).Scan(&ended); err != nil {
			t.Fatal(err)
		}
		if ended >= len(debits) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d debits ended", ended, len(debits))
		}
	}
	waitAllTerminal(t, ctx, pool)

	for _, d := range debits {
		var endings, attempts, payments, completed, attemptNumbers int
		var poor bool
		if err := pool.QueryRow(ctx, `
			select
				(select count(*) from events where aggregate_id = $1 and event_type in ('MandateDebitSucceeded', 'MandateDebitFailed')
					and payload->>'notification_id' = $2),
				(select count(*) from events where aggregate_id = $1 and event_type = 'MandateDebitAttempted' and payload->>'notification_id' = $2),
				(select count(distinct (payload->>'attempt')) from events where aggregate_id = $1 and event_type = 'MandateDebitAttempted'
					and payload->>'notification_id' = $2),
				(select count(*) from events p where p.event_type = 'PaymentInitiated' and p.aggregate_id in
					(select payload->>'payment_id' from events where aggregate_id = $1 and event_type = 'MandateDebitAttempted'
						and payload->>'notification_id' = $2)),
				(select count(*) from events p where p.event_type = 'PaymentCompleted' and p.aggregate_id in
					(select payload->>'payment_id' from events where aggregate_id = $1 and event_type = 'MandateDebitAttempted'
						and payload->>'notification_id' = $2)),
				(select payload->>'payer_vpa' like 'payer0.%' or payload->>'payer_vpa' like 'payer4.%' from events
					where aggregate_id = $1 and event_type = 'MandateRequested')`,
			d.mandate, d.id).Scan(&endings, &attempts, &attemptNumbers, &payments, &completed, &poor); err != nil {
			t.Fatal(err)
		}
		switch {
		case endings != 1:
			t.Errorf("debit %s ended %d times", d.id, endings)
		case attempts != attemptNumbers || payments != attempts:
			t.Errorf("debit %s: %d attempts (%d numbers), %d payments", d.id, attempts, attemptNumbers, payments)
		case poor && (attempts != 3 || completed != 0):
			t.Errorf("debit %s of a payer without money: %d attempts, %d completed; want 3 attempts (1 + MANDATE_RETRIES), none completed", d.id, attempts, completed)
		case !poor && (attempts != 1 || completed != 1):
			t.Errorf("debit %s: %d attempts, %d completed; want exactly one payment, completed", d.id, attempts, completed)
		}
	}
	// The money the merchant received is exactly the succeeded debits'.
	var received, succeeded int64
	if err := pool.QueryRow(ctx, `select coalesce(sum((payload->>'amount_paise')::bigint), 0) from events
		where aggregate_id = $1 and event_type = 'AccountCredited'`, merchant).Scan(&received); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `select coalesce(sum((p.payload->>'amount_paise')::bigint), 0) from events s
		join events p on p.aggregate_id = s.payload->>'payment_id' and p.event_type = 'PaymentInitiated'
		where s.event_type = 'MandateDebitSucceeded'`).Scan(&succeeded); err != nil {
		t.Fatal(err)
	}
	if received != succeeded || received == 0 {
		t.Errorf("the merchant received %d paise for %d paise of succeeded debits", received, succeeded)
	}
	verifyLedger(t, pool, dbURL)
	rebuildGivesTheSameTables(t, ctx, pool, dbURL)
}

// rebuildGivesTheSameTables rebuilds the merchant and payments projections from the log and requires
// every row of their tables to be what the live projections wrote, through the kills.
func rebuildGivesTheSameTables(t *testing.T, ctx context.Context, pool *pgxpool.Pool, dbURL string) {
	t.Helper()
	last := waitBelowHorizon(t, pool)
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var behind int
		if err := pool.QueryRow(ctx, `select count(*) from projection_checkpoints where name in ('merchant', 'payments')
			and (tx_id::text::bigint, global_position) <> ($1, $2)`, int64(last.TxID), last.GlobalPosition).Scan(&behind); err != nil {
			t.Fatal(err)
		}
		if behind == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("projections not caught up with %v", last)
		}
	}
	tables := []string{"qr_codes", "mandates", "mandate_debits", "mandate_events", "payments"}
	for _, tb := range tables {
		if _, err := pool.Exec(ctx, `create table snap_`+tb+` as select * from `+tb); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `do $$ begin execute format('grant create on database %I to upi_consumers',
		current_database()); end $$`); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"merchant", "payments"} {
		if out, errs, code := runConsumers(t, dbURL, "rebuild", name); code != 0 {
			t.Fatalf("rebuild %s: exit %d\n%s%s", name, code, out, errs)
		}
	}
	for _, tb := range tables {
		var rows, diff int
		if err := pool.QueryRow(ctx, `select (select count(*) from `+tb+`), (select count(*) from (
			(select * from `+tb+` except all select * from snap_`+tb+`)
			union all
			(select * from snap_`+tb+` except all select * from `+tb+`)) d)`).Scan(&rows, &diff); err != nil {
			t.Fatal(err)
		}
		if diff != 0 || (rows == 0 && tb != "qr_codes") {
			t.Errorf("rebuilt %s: %d rows, %d differ from the live projection's", tb, rows, diff)
		}
	}
}
