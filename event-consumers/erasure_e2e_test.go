package main_test

// Erasure by crypto-shredding, end to end (docs/architecture.md, "Personal data and erasure"): a person
// with a distinctive name pays with a distinctive note, is refunded with a distinctive reason, approves a
// collect request with a distinctive note, empties the account and is erased through the gateway. Then
// none of those strings appears anywhere: not in any table of the database (read models, the log,
// snapshots), not after a rebuild of every projection, not in any message of the event feed, not in any
// answer of the API, the audit trail included; and the ledger still sums to zero.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/event-consumers/internal/adapters/rabbitmq/relay/relaytest"
	"upi/testenv"
)

func TestErasureLeavesNoTraceOfThePerson(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole system; skipped with -short")
	}
	t.Parallel()
	rabbitURL := testenv.RabbitMQ(t)
	exchange := relaytest.Exchange()
	feed := relaytest.Bind(t, rabbitURL, exchange, "#")
	dbURL := testenv.Postgres(t)
	cmd := testenv.StartService(t, "command-service", map[string]string{"DATABASE_URL": dbURL})
	qry := testenv.StartService(t, "query-service", map[string]string{"DATABASE_URL": dbURL})
	cons := testenv.StartService(t, "event-consumers", map[string]string{"DATABASE_URL": dbURL, "COMMAND_SERVICE_URL": cmd.URL,
		"RELAY_ENABLED": "true", "RABBITMQ_URL": rabbitURL, "RELAY_EXCHANGE": exchange})
	gw := testenv.StartService(t, "api-gateway", map[string]string{
		"REDIS_URL": testenv.Redis(t), "COMMAND_SERVICE_URL": cmd.URL, "QUERY_SERVICE_URL": qry.URL,
		"EVENT_CONSUMERS_URL": cons.URL, "API_KEYS": "psp-a=key-a,psp-b=key-b", "OPERATOR_KEYS": "dpo=dpo-key",
	})
	hc := &http.Client{Timeout: 15 * time.Second}
	a := &bankClient{base: gw.URL, key: "key-a", http: hc}     // the person's PSP
	b := &bankClient{base: gw.URL, key: "key-b", http: hc}     // the merchant's PSP
	ops := &bankClient{base: gw.URL, key: "dpo-key", http: hc} // the data protection officer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	run := uuid.NewString()[:6]
	person, shop, other := "zeb."+run+"@okbank", "shop."+run+"@okbank", "ann."+run+"@okbank"
	// What must vanish: the name, a payment's note, a refund's reason, a collect request's note.
	secrets := []string{"Zebulon Quixotebottom-" + run, "Marigold rendezvous " + run, "Xylophone refund " + run,
		"Periwinkle collect " + run}
	name, payNote, refundReason, collectNote := secrets[0], secrets[1], secrets[2], secrets[3]

	last := "" // the position of the last write, which reads wait for
	must := func(c *bankClient, status int, path, key string, body any) map[string]any {
		t.Helper()
		st, out := c.post(ctx, t, path, key, body)
		if st != status {
			t.Fatalf("POST %s: %d %s, want %d", path, st, out, status)
		}
		var m map[string]any
		_ = json.Unmarshal(out, &m)
		if p, ok := m["position"].(string); ok {
			last = p
		}
		return m
	}
	get := func(c *bankClient, path string) (int, []byte) {
		t.Helper()
		st, out, _ := c.do(ctx, http.MethodGet, path, "", nil)
		return st, out
	}
	// settled reads a payment or refund once it has ended, waiting for the projection to reach the position
	// of the last write first.
	settled := func(c *bankClient, path string) map[string]any {
		t.Helper()
		q := "?wait=10s"
		if last != "" {
			q += "&min_position=" + url.QueryEscape(last)
		}
		st, out := get(c, path+q)
		var m map[string]any
		if st != 200 || json.Unmarshal(out, &m) != nil || m["status"] == "PENDING" {
			t.Fatalf("GET %s: %d %s", path, st, out)
		}
		return m
	}

	must(a, 201, "/v1/accounts", "open-person", map[string]any{"vpa": person, "holder_name": name})
	must(a, 201, "/v1/accounts", "open-other", map[string]any{"vpa": other, "holder_name": "Ann"})
	must(b, 201, "/v1/accounts", "open-shop", map[string]any{"vpa": shop, "holder_name": "Corner Shop", "type": "ENTITY", "mcc": "5411"})
	must(a, 201, "/v1/accounts/"+person+"/deposits", "top-up", map[string]any{"amount_paise": 10000, "reference": "top-" + run})
	must(a, 201, "/v1/accounts/"+other+"/deposits", "top-up-other", map[string]any{"amount_paise": 10000, "reference": "top-o-" + run})

	// The person pays the shop with a note, the shop refunds part with a reason, and the shop's collect
	// request with a note is approved.
	pay := must(a, 202, "/v1/payments", "pay", map[string]any{"payer_vpa": person, "payee_vpa": shop, "amount_paise": 6000, "note": payNote})
	pid := pay["payment_id"].(string)
	if pay["note"] != payNote {
		t.Errorf("the payment's answer shows note %v, want the note sent", pay["note"])
	}
	paid := settled(a, "/v1/payments/"+pid)
	if paid["status"] != "COMPLETED" || paid["note"] != payNote {
		t.Fatalf("payment before erasure: %v", paid)
	}
	refund := must(b, 202, "/v1/payments/"+pid+"/refunds", "refund", map[string]any{"amount_paise": 2000, "reason": refundReason})
	rid := refund["refund_id"].(string)
	if r := settled(b, "/v1/refunds/"+rid); r["status"] != "COMPLETED" || r["reason"] != refundReason {
		t.Fatalf("refund before erasure: %v", r)
	}
	collect := must(b, 201, "/v1/collect-requests", "collect", map[string]any{"payee_vpa": shop, "payer_vpa": person, "amount_paise": 1000, "note": collectNote})
	cid := collect["collect_id"].(string)
	approved := must(a, 202, "/v1/collect-requests/"+cid+"/approve", "approve", nil)
	if approved["note"] != collectNote {
		t.Errorf("the approval shows note %v, want the request's", approved["note"])
	}
	collectPayment := approved["payment_id"].(string)
	if p := settled(a, "/v1/payments/"+collectPayment); p["status"] != "COMPLETED" {
		t.Fatalf("the collect's payment: %v", p)
	}
	if st, out := get(a, "/v1/vpas/"+person); st != 200 || !strings.Contains(string(out), name) {
		t.Fatalf("lookup before erasure: %d %s", st, out)
	}

	// Erasure is for operators, of an empty account.
	erase := map[string]any{"vpa": person}
	if st, out := a.post(ctx, t, "/v1/ops/erasures", "erase-by-client", erase); st != 403 {
		t.Errorf("a client's key erases: %d %s", st, out)
	}
	if st, out := ops.post(ctx, t, "/v1/ops/erasures", "erase-early", erase); st != 422 || !strings.Contains(string(out), "ACCOUNT_NOT_EMPTY") {
		t.Errorf("erasure of an account with money: %d %s, want 422 ACCOUNT_NOT_EMPTY", st, out)
	}
	// 10000 - 6000 + 2000 - 1000 = 5000 left: withdrawn to the bank.
	if w := must(a, 202, "/v1/accounts/"+person+"/withdrawals", "cash-out", map[string]any{"amount_paise": 5000, "reference": "out-" + run}); w["status"] != "COMPLETED" {
		t.Fatalf("withdrawal: %v", w)
	}
	first := must(ops, 200, "/v1/ops/erasures", "erase", erase)
	again := must(ops, 200, "/v1/ops/erasures", "erase-again", erase)
	if first["status"] != "CLOSED" || fmt.Sprint(first) != fmt.Sprint(again) {
		t.Errorf("erasing twice answers %v then %v, want the same CLOSED erasure", first, again)
	}
	pos := url.QueryEscape(first["position"].(string))

	// The account is closed for good.
	st, out := get(a, "/v1/accounts/"+person+"?min_position="+pos)
	var acct map[string]any
	if st != 200 || json.Unmarshal(out, &acct) != nil || acct["status"] != "CLOSED" || acct["holder_name"] != "[erased]" || acct["balance_paise"] != 0.0 {
		t.Errorf("the erased account reads %d %s", st, out)
	}
	if st, out := get(b, "/v1/vpas/"+person+"?min_position="+pos); st != 410 || !strings.Contains(string(out), "ACCOUNT_CLOSED") {
		t.Errorf("lookup of the erased vpa: %d %s, want 410 ACCOUNT_CLOSED", st, out)
	}
	if st, out := a.post(ctx, t, "/v1/accounts/"+person+"/deposits", "late-top-up", map[string]any{"amount_paise": 100, "reference": "late-" + run}); st != 422 || !strings.Contains(string(out), "ACCOUNT_CLOSED") {
		t.Errorf("deposit into the erased account: %d %s, want 422 ACCOUNT_CLOSED", st, out)
	}
	if st, out := a.post(ctx, t, "/v1/payments", "late-note", map[string]any{"payer_vpa": other, "payee_vpa": person, "amount_paise": 100, "note": "hello"}); st != 422 || !strings.Contains(string(out), "ACCOUNT_CLOSED") {
		t.Errorf("a payment with a note to the erased account: %d %s, want 422 ACCOUNT_CLOSED", st, out)
	}
	late := must(a, 202, "/v1/payments", "late-pay", map[string]any{"payer_vpa": other, "payee_vpa": person, "amount_paise": 100})
	if p := settled(a, "/v1/payments/"+late["payment_id"].(string)); p["status"] != "FAILED" || p["failure_code"] != "PAYEE_UNAVAILABLE" {
		t.Errorf("a payment to the erased account: %v, want FAILED PAYEE_UNAVAILABLE (its debit reversed)", p)
	}
	lateFrom := must(a, 202, "/v1/payments", "late-pay-from", map[string]any{"payer_vpa": person, "payee_vpa": other, "amount_paise": 100})
	if p := settled(a, "/v1/payments/"+lateFrom["payment_id"].(string)); p["status"] != "FAILED" || p["failure_code"] != "ACCOUNT_CLOSED" || p["npci_code"] != "YE" {
		t.Errorf("a payment from the erased account: %v, want FAILED ACCOUNT_CLOSED YE", p)
	}

	// Every answer that showed the person's data shows it erased, amounts and references intact.
	reads := func(when string) {
		t.Helper()
		if p := settled(a, "/v1/payments/"+pid); p["note"] != "[erased]" || p["amount_paise"] != 6000.0 || p["rrn"] == "" {
			t.Errorf("%s: the payment reads %v", when, p)
		}
		if r := settled(b, "/v1/refunds/"+rid); r["reason"] != "[erased]" || r["amount_paise"] != 2000.0 {
			t.Errorf("%s: the refund reads %v", when, r)
		}
		answers := map[string]*bankClient{
			"/v1/payments/" + pid + "/events":              a,
			"/v1/payments/" + collectPayment + "/events":   a,
			"/v1/collect-requests/" + cid:                  b,
			"/v1/accounts/" + person:                       a,
			"/v1/accounts/" + person + "/transactions":     a,
			"/v1/accounts/" + person + "/collect-requests": a,
			"/v1/payments/" + collectPayment:               a,
		}
		for path, c := range answers {
			st, out := get(c, path)
			if st != 200 {
				t.Errorf("%s: GET %s: %d %s", when, path, st, out)
			}
			assertAbsent(t, when+": GET "+path, out, secrets)
			if strings.Contains(path, "/events") && !bytes.Contains(out, []byte("[erased]")) {
				t.Errorf("%s: the audit trail %s shows no erased field: %s", when, path, out)
			}
		}
	}
	reads("after the erasure")

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	waitBelowHorizon(t, pool)
	// Let the projections reach the end of the log before the dump.
	if st, out := get(a, "/v1/payments/"+lateFrom["payment_id"].(string)+"?min_position="+pos); st != 200 {
		t.Fatalf("read at the erasure's position: %d %s", st, out)
	}
	assertDatabaseClean(t, ctx, pool, "after the erasure", secrets)

	// A rebuild of every projection from the log gives the same, erased (the consumers stopped meanwhile,
	// as an operator's rebuild by the command line does it).
	cons.Stop()
	// The migrations grant upi_consumers CREATE on their database (a rebuild makes a schema); a test's
	// database is a copy of a migrated template, which database grants do not follow.
	if _, err := pool.Exec(ctx, `do $$ begin execute format('grant create on database %I to upi_consumers',
		current_database()); end $$`); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := runConsumers(t, dbURL, "rebuild", "all"); code != 0 {
		t.Fatalf("rebuild all exited %d:\n%s%s", code, out, errs)
	}
	cons.Start()
	assertDatabaseClean(t, ctx, pool, "after a rebuild", secrets)
	reads("after a rebuild")

	// The feed carried the log as it is: sealed fields, which no key opens any more.
	feed.WaitAll(t, pool, time.Minute)
	sealed := 0
	for _, d := range feed.Deliveries() {
		assertAbsent(t, "feed message "+d.MessageID+" ("+d.Type+")", d.Raw, secrets)
		if bytes.Contains(d.Raw, []byte("pii:v1:")) {
			sealed++
		}
	}
	if sealed < 4 {
		t.Errorf("the feed carried %d sealed fields, want the opening, the notes and the reason sealed", sealed)
	}

	// The erasure wins races: an empty account paid concurrently while it is erased. Either the erasure
	// comes first, and every payment to it fails with its debit reversed (the account stays empty and
	// closed), or a payment credits it first, and the erasure is refused for its balance. Never a credit
	// into an erased account.
	racer := "race." + run + "@okbank"
	must(a, 201, "/v1/accounts", "open-racer", map[string]any{"vpa": racer, "holder_name": "Racer", "type": "ENTITY", "mcc": "5411"})
	const racing = 12
	payments := make(chan string, racing)
	erased := make(chan int, 1)
	var erasedAt string
	var wg sync.WaitGroup
	for i := range racing {
		wg.Go(func() {
			st, out := a.post(ctx, t, "/v1/payments", fmt.Sprintf("race-%d", i), map[string]any{"payer_vpa": other, "payee_vpa": racer, "amount_paise": 10})
			var m map[string]any
			if st != 202 || json.Unmarshal(out, &m) != nil {
				t.Errorf("racing payment: %d %s", st, out)
				return
			}
			payments <- m["payment_id"].(string)
		})
	}
	wg.Go(func() {
		st, out := ops.post(ctx, t, "/v1/ops/erasures", "erase-racer", map[string]any{"vpa": racer})
		if st != 200 && !(st == 422 && strings.Contains(string(out), "ACCOUNT_NOT_EMPTY")) {
			t.Errorf("racing erasure: %d %s", st, out)
		}
		var m map[string]any
		if st == 200 && json.Unmarshal(out, &m) == nil {
			erasedAt, _ = m["position"].(string)
		}
		erased <- st
	})
	wg.Wait()
	close(payments)
	completed := 0
	for id := range payments {
		p := settled(a, "/v1/payments/"+id)
		switch {
		case p["status"] == "COMPLETED":
			completed++
		case p["failure_code"] != "PAYEE_UNAVAILABLE":
			t.Errorf("racing payment %s: %v", id, p)
		}
	}
	raced := <-erased
	// The account as of the erasure, or, when it was refused, as of now (only its status matters then).
	racerPath := "/v1/accounts/" + racer
	if erasedAt != "" {
		racerPath += "?min_position=" + url.QueryEscape(erasedAt)
	}
	st, out = get(a, racerPath)
	var racerAcct map[string]any
	_ = json.Unmarshal(out, &racerAcct)
	t.Logf("race: erasure %d, %d of %d payments completed, account %v", raced, completed, racing, racerAcct)
	switch {
	case raced == 200 && (completed > 0 || racerAcct["status"] != "CLOSED" || racerAcct["balance_paise"] != 0.0):
		t.Errorf("erased, yet %d payments completed; the account reads %d %s", completed, st, out)
	case raced == 422 && completed == 0:
		t.Errorf("the erasure was refused for a balance no payment gave")
	}

	// The books still hold: the ledger check through the gateway, and bin/event-consumers verify.
	st, out = get(ops, "/v1/ops/ledger-check")
	if st != 200 || !strings.Contains(string(out), `"ok":true`) {
		t.Errorf("ledger check: %d %s", st, out)
	}
	verifyLedger(t, pool, dbURL)
}

// assertAbsent fails for each secret that appears in got.
func assertAbsent(t *testing.T, where string, got []byte, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if bytes.Contains(got, []byte(s)) {
			t.Errorf("%s shows %q: %s", where, s, got)
		}
	}
}

// assertDatabaseClean dumps every row of every table of the database (read models, the log, snapshots,
// checkpoints, whatever is there) as text and looks for the secrets.
func assertDatabaseClean(t *testing.T, ctx context.Context, pool *pgxpool.Pool, when string, secrets []string) {
	t.Helper()
	rows, err := pool.Query(ctx, `select quote_ident(table_schema) || '.' || quote_ident(table_name) from information_schema.tables
		where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) < 10 {
		t.Fatalf("only %d tables: %v", len(tables), tables)
	}
	for _, table := range tables {
		rows, err := pool.Query(ctx, `select t::text from `+table+` t`)
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		dump, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		assertAbsent(t, when+": table "+table, []byte(strings.Join(dump, "\n")), secrets)
	}
}
