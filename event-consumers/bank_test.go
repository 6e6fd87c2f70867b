package main_test

// The bank-invariant test, after Jepsen's bank workload: many accounts, thousands of concurrent random
// payments (some overdrawing), retried with the same keys like real clients do, through the real
// gateway, command service, consumers and query service, while the command service and the consumers
// are killed (SIGKILL) and restarted and Redis is flushed. Afterwards the log and the read models must
// agree that no money was lost, duplicated or made up.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"upi/shared/contract/events"
	"upi/testenv"
)

type bankAccount struct {
	vpa      string
	client   int  // index of its owner in the test's clients
	merchant bool // an ENTITY, whose payments its client refunds
}

type bankClient struct {
	base, key string
	http      *http.Client
	// answered, when set, sees every answer (a transport error is status 0, its error as the body) and how
	// long it took; it must be safe for concurrent use.
	answered func(status int, h http.Header, body []byte, took time.Duration)
}

// do sends one request and returns status and body; a transport error is status 0.
func (c *bankClient) do(ctx context.Context, method, path, idemKey string, body any) (int, []byte, http.Header) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		if c.answered != nil {
			c.answered(0, nil, []byte(err.Error()), time.Since(start))
		}
		return 0, nil, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if c.answered != nil {
		c.answered(resp.StatusCode, resp.Header, b, time.Since(start))
	}
	return resp.StatusCode, b, resp.Header
}

// post retries one POST with the same key until it gets a definitive answer (2xx or a 4xx other than
// 409 in flight and 429), as a careful client would through crashes and outages.
func (c *bankClient) post(ctx context.Context, t testing.TB, path, idemKey string, body any) (int, []byte) {
	for attempt := 0; ; attempt++ {
		status, b, _ := c.do(ctx, http.MethodPost, path, idemKey, body)
		switch {
		case status >= 200 && status < 300, status >= 400 && status < 500 && status != 409 && status != 429:
			return status, b
		}
		if ctx.Err() != nil {
			t.Errorf("POST %s key %s: no definitive answer before the deadline (last status %d)", path, idemKey, status)
			return status, b
		}
		time.Sleep(time.Duration(20+rand.IntN(80)) * time.Millisecond)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestBankInvariants(t *testing.T) {
	if testing.Short() {
		t.Skip("the bank workload runs the whole system; skipped with -short")
	}
	payments := envInt("BANK_PAYMENTS", 2000)
	t.Run("partitions=1", func(t *testing.T) { bankInvariants(t, payments, 1) })
	// The same with the consumers in partitions (the workflow, accounts and payments: two workers each),
	// on a third of the payments: the kills take partition workers down in the middle of their batches, and
	// the query service's read-your-writes, the ledger check and the operator's views must not notice.
	t.Run("partitions=2", func(t *testing.T) { bankInvariants(t, max(payments/3, 100), 2) })
}

func bankInvariants(t *testing.T, payments, partitions int) {
	workers := envInt("BANK_WORKERS", 16)
	accountsPerClient := 6

	dbURL := testenv.Postgres(t)
	redisURL := testenv.Redis(t)
	cmd := testenv.StartService(t, "command-service", map[string]string{"DATABASE_URL": dbURL,
		// Payer limits off: the bank pays many times a day from each account.
		"LIMIT_DAILY_PAISE": "0", "LIMIT_DAILY_P2P_COUNT": "0", "LIMIT_NEW_ACCOUNT_PAISE": "0"})
	qry := testenv.StartService(t, "query-service", map[string]string{"DATABASE_URL": dbURL})
	cons := testenv.StartService(t, "event-consumers", map[string]string{"DATABASE_URL": dbURL, "COMMAND_SERVICE_URL": cmd.URL,
		"CONSUMER_PARTITIONS": strconv.Itoa(partitions)})
	gw := testenv.StartService(t, "api-gateway", map[string]string{
		"REDIS_URL": redisURL, "COMMAND_SERVICE_URL": cmd.URL, "QUERY_SERVICE_URL": qry.URL,
		"EVENT_CONSUMERS_URL": cons.URL, "OPERATOR_KEYS": "auditor=audit-key",
		"API_KEYS": "bank-a=key-a,bank-b=key-b", "RATE_LIMIT_RPS": "1000000", "RATE_LIMIT_BURST": "1000000",
	})
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	clients := []*bankClient{{base: gw.URL, key: "key-a", http: hc}, {base: gw.URL, key: "key-b", http: hc}}

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	accounts, deposited := openBankAccounts(ctx, t, clients, accountsPerClient)

	// Chaos: kill -9 the command service and the consumers in turn, and flush Redis now and then.
	rdbOpts, _ := redis.ParseURL(redisURL)
	rdb := redis.NewClient(rdbOpts)
	defer rdb.Close()
	chaosCtx, stopChaos := context.WithCancel(ctx)
	var chaosWG sync.WaitGroup
	var kills atomic.Int32
	chaosWG.Add(1)
	go func() {
		defer chaosWG.Done()
		for round := 0; ; round++ {
			select {
			case <-chaosCtx.Done():
				return
			case <-time.After(time.Duration(700+rand.IntN(800)) * time.Millisecond):
			}
			switch round % 3 {
			case 0:
				cmd.Kill()
				time.Sleep(100 * time.Millisecond)
				cmd.Start()
			case 1:
				cons.Kill()
				time.Sleep(100 * time.Millisecond)
				cons.Start()
			case 2:
				rdb.FlushDB(chaosCtx)
			}
			kills.Add(1)
		}
	}()

	accepted, nRefunds := payRandomly(ctx, t, clients, accounts, payments, workers)
	stopChaos()
	chaosWG.Wait()
	for _, s := range []*testenv.Service{cmd, cons} {
		if !s.Running() {
			s.Start()
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d payments and %d refunds accepted, %d chaos actions (kills and flushes)", len(accepted), nRefunds, kills.Load())

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	waitAllTerminal(t, ctx, pool)
	checkLog(t, ctx, pool, accepted, deposited)
	var reserved int
	if err := pool.QueryRow(ctx, `select count(*) from events where event_type = 'RefundReserved'`).Scan(&reserved); err != nil {
		t.Fatal(err)
	}
	if reserved != nRefunds {
		t.Errorf("%d refunds in the log for %d accepted refund keys: a retry executed twice or an accepted refund is missing", reserved, nRefunds)
	}
	checkReadModels(t, ctx, pool, clients, accounts)
	verifyLedger(t, pool, dbURL)
	operatorSeesTheBooks(t, ctx, &bankClient{base: gw.URL, key: "audit-key", http: hc}, clients[0], deposited)
}

// operatorSeesTheBooks reads the ledger check and the settlement accounts through the gateway, as an
// operator does: the books hold, and the banks' side is exactly what was deposited, negated; a client's key
// is refused there.
func operatorSeesTheBooks(t *testing.T, ctx context.Context, operator, client *bankClient, deposited int64) {
	t.Helper()
	st, body, _ := operator.do(ctx, http.MethodGet, "/v1/ops/ledger-check", "", nil)
	var report struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(body, &report); st != http.StatusOK || err != nil || !report.OK || len(report.Checks) == 0 {
		t.Errorf("GET /v1/ops/ledger-check as an operator: %d %s", st, body)
	}
	st, body, _ = operator.do(ctx, http.MethodGet, "/v1/ops/settlement-accounts", "", nil)
	var banks struct {
		Items []struct {
			Balance int64 `json:"balance_paise"`
		} `json:"items"`
	}
	var total int64
	if err := json.Unmarshal(body, &banks); st != http.StatusOK || err != nil {
		t.Errorf("GET /v1/ops/settlement-accounts as an operator: %d %s", st, body)
	}
	for _, b := range banks.Items {
		total += b.Balance
	}
	if total != -deposited {
		t.Errorf("the banks' settlement accounts hold %d, want %d: minus every deposit", total, -deposited)
	}
	for _, path := range []string{"/v1/ops/ledger-check", "/v1/ops/settlement-accounts"} {
		if st, body, _ := client.do(ctx, http.MethodGet, path, "", nil); st != http.StatusForbidden {
			t.Errorf("GET %s with a client's key: %d %s, want 403", path, st, body)
		}
	}
}

// verifyLedger runs `event-consumers verify` on what the workload and the chaos left, as an operator
// would, and requires every check to hold: money sums to zero at every transaction boundary, nothing is
// stuck in flight, every read model equals the replay, no RRN was given twice.
func verifyLedger(t *testing.T, pool *pgxpool.Pool, dbURL string) {
	t.Helper()
	waitBelowHorizon(t, pool)
	out, errs, code := runConsumers(t, dbURL, "verify")
	t.Logf("event-consumers verify:\n%s", out)
	if code != 0 {
		t.Errorf("event-consumers verify exited %d, want 0 (every check holds)\n%s%s", code, out, errs)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "ok   ") {
			t.Errorf("ledger check: %s", line)
		}
	}
}

// openBankAccounts opens accountsPerClient accounts for each client and funds each once (the deposit is
// retried with its key, so funded exactly once); it returns them and the money deposited.
func openBankAccounts(ctx context.Context, t *testing.T, clients []*bankClient, accountsPerClient int) ([]bankAccount, int64) {
	t.Helper()
	run := uuid.NewString()[:8]
	var accounts []bankAccount
	var deposited int64
	for ci, c := range clients {
		for i := 0; i < accountsPerClient; i++ {
			vpa := fmt.Sprintf("acc%d.%d.%s@bank", ci, i, run)
			open := map[string]any{"vpa": vpa, "holder_name": "Holder " + vpa}
			if i == 0 { // each client's first account is a merchant, whose payments may be refunded
				open["type"], open["mcc"] = "ENTITY", "5411"
			}
			if st, b := c.post(ctx, t, "/v1/accounts", "open-"+vpa, open); st != 201 {
				t.Fatalf("open %s: %d %s", vpa, st, b)
			}
			amount := int64(20000 + rand.IntN(80000))
			if st, b := c.post(ctx, t, "/v1/accounts/"+vpa+"/deposits", "fund-"+vpa, map[string]any{"amount_paise": amount, "reference": "fund"}); st != 201 {
				t.Fatalf("fund %s: %d %s", vpa, st, b)
			}
			deposited += amount
			accounts = append(accounts, bankAccount{vpa: vpa, client: ci, merchant: i == 0})
		}
	}

	return accounts, deposited
}

// payRandomly sends n payments from workers goroutines: random payer (one of the client's own), random
// payee, random amount (some overdraw). A third of them are sent twice at once under the same key; every
// one is retried until definitive. Beside them, each completed payment to a merchant is refunded by the
// merchant's client in one to three parts of random size (so some pass the payment's amount and are
// refused), a third sent twice at once under one key, every one retried until definitive. It returns the
// accepted payments (idempotency key -> payment id) and how many refunds were accepted.
func payRandomly(ctx context.Context, t *testing.T, clients []*bankClient, accounts []bankAccount, payments, workers int) (map[string]string, int) {
	var (
		mu       sync.Mutex
		accepted = map[string]string{} // idempotency key -> payment id
		declined atomic.Int32
	)
	toRefund := make(chan merchantPayment, payments)
	var refunds sync.Map // idempotency key -> refund id
	var refundWG sync.WaitGroup
	for range 4 {
		refundWG.Go(func() { refundRandomly(ctx, t, clients, toRefund, &refunds) })
	}
	next := atomic.Int32{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int32(payments) {
				ci := rand.IntN(len(clients))
				var mine []bankAccount
				for _, a := range accounts {
					if a.client == ci {
						mine = append(mine, a)
					}
				}
				payer := mine[rand.IntN(len(mine))]
				payee := accounts[rand.IntN(len(accounts))]
				for payee.vpa == payer.vpa {
					payee = accounts[rand.IntN(len(accounts))]
				}
				body := map[string]any{"payer_vpa": payer.vpa, "payee_vpa": payee.vpa, "amount_paise": 1 + rand.IntN(30000)}
				key := uuid.NewString()
				copies := 1 + rand.IntN(3)/2 // one in three sent twice concurrently
				ids := make([]string, copies)
				// A third of the payments to merchants are collect requests: the merchant's client asks,
				// the payer's client approves, and the approval starts the payment. Copies of an approval
				// go under keys of their own: approving twice must still start one payment.
				path, send, sameKey := "/v1/payments", clients[ci], true
				if payee.merchant && rand.IntN(3) == 0 {
					st, b := clients[payee.client].post(ctx, t, "/v1/collect-requests", "collect-"+key, map[string]any{
						"payee_vpa": payee.vpa, "payer_vpa": payer.vpa, "amount_paise": body["amount_paise"],
						"expires_in_seconds": 3600})
					var c struct {
						CollectID string `json:"collect_id"`
					}
					if st != 201 || json.Unmarshal(b, &c) != nil {
						t.Errorf("collect request %s: %d %s", key, st, b)
						continue
					}
					path, body, sameKey = "/v1/collect-requests/"+c.CollectID+"/approve", nil, false
				}
				var cw sync.WaitGroup
				for i := range copies {
					cw.Add(1)
					go func() {
						defer cw.Done()
						k := key
						if !sameKey {
							k = fmt.Sprintf("%s-%d", key, i)
						}
						st, b := send.post(ctx, t, path, k, body)
						if st != 202 {
							t.Errorf("%s %s: %d %s", path, key, st, b)
							return
						}
						var p struct {
							PaymentID string `json:"payment_id"`
						}
						_ = json.Unmarshal(b, &p)
						ids[i] = p.PaymentID
					}()
				}
				cw.Wait()
				if copies == 2 && ids[0] != ids[1] {
					t.Errorf("key %s answered two payment ids: %v", key, ids)
				}
				if ids[0] == "" {
					declined.Add(1)
					continue
				}
				mu.Lock()
				accepted[key] = ids[0]
				mu.Unlock()
				if payee.merchant {
					var amount int64
					if err := paymentAmountOf(ctx, clients[ci], ids[0], &amount); err != nil {
						t.Error(err)
						continue
					}
					toRefund <- merchantPayment{id: ids[0], client: payee.client, amount: amount}
				}
			}
		}()
	}
	wg.Wait()
	close(toRefund)
	refundWG.Wait()
	n := 0
	refunds.Range(func(_, _ any) bool { n++; return true })
	return accepted, n
}

// refundRandomly refunds the payments it is handed once they complete (see payRandomly).
func refundRandomly(ctx context.Context, t *testing.T, clients []*bankClient, payments <-chan merchantPayment, refunds *sync.Map) {
	for mp := range payments {
		c := clients[mp.client]
		if !completedPayment(ctx, t, c, mp.id) {
			continue
		}
		for part := range 1 + rand.IntN(3) {
			key := fmt.Sprintf("refund-%s-%d", mp.id, part)
			body := map[string]any{"amount_paise": 1 + rand.Int64N(mp.amount), "reason": "bank test"}
			var cw sync.WaitGroup
			for range 1 + rand.IntN(3)/2 {
				cw.Go(func() {
					st, b := c.post(ctx, t, "/v1/payments/"+mp.id+"/refunds", key, body)
					switch {
					case st == 202:
						var r struct {
							RefundID string `json:"refund_id"`
						}
						_ = json.Unmarshal(b, &r)
						if prev, loaded := refunds.LoadOrStore(key, r.RefundID); loaded && prev != r.RefundID {
							t.Errorf("refund key %s answered two refund ids: %v, %s", key, prev, r.RefundID)
						}
					case st == 422 && strings.Contains(string(b), "REFUND_EXCEEDS_PAYMENT"):
					default:
						t.Errorf("refund %s: %d %s", key, st, b)
					}
				})
			}
			cw.Wait()
		}
	}
}

// waitAllTerminal waits until every payment in the log has completed or failed.
func waitAllTerminal(t *testing.T, ctx context.Context, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var open int
		if err := pool.QueryRow(ctx, `
			select count(*) from events i
			where i.event_type = 'PaymentInitiated'
			  and not exists (select 1 from events e where e.aggregate_id = i.aggregate_id
			                  and e.event_type in ('PaymentCompleted', 'PaymentFailed'))
			  or i.event_type = 'RefundReserved'
			  and not exists (select 1 from events e where e.event_type = 'RefundSettled'
			                  and e.payload->>'refund_id' = i.payload->>'refund_id')`).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d payments or refunds never reached a terminal state", open)
		}
		time.Sleep(200 * time.Millisecond)
	}

}

// checkLog folds the event log and checks the bank's invariants on it.
func checkLog(t *testing.T, ctx context.Context, pool *pgxpool.Pool, accepted map[string]string, deposited int64) {
	t.Helper()
	rows, err := pool.Query(ctx, `select aggregate_id, aggregate_type, event_type, version, payload from events
		order by aggregate_id, version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	balances := map[string]int64{}
	type moves struct{ initiated, debited, rejected, credited, reversed, completed, failed int }
	perPayment := map[string]*moves{}
	pm := func(id string) *moves {
		if perPayment[id] == nil {
			perPayment[id] = &moves{}
		}
		return perPayment[id]
	}
	type refundMoves struct {
		moves
		reserved, settled int
		payment           string
		amount            int64
	}
	perRefund := map[string]*refundMoves{}
	rm := func(id string) *refundMoves {
		if perRefund[id] == nil {
			perRefund[id] = &refundMoves{}
		}
		return perRefund[id]
	}
	paymentAmount := map[string]int64{}
	var depositsInLog int64
	lastVersion := map[string]int{}
	rrns := map[string]string{}
	for rows.Next() {
		var agg, typ, eventType string
		var version int
		var payload []byte
		if err := rows.Scan(&agg, &typ, &eventType, &version, &payload); err != nil {
			t.Fatal(err)
		}
		if version != lastVersion[agg]+1 {
			t.Errorf("%s: version %d follows %d", agg, version, lastVersion[agg])
		}
		lastVersion[agg] = version
		p, err := events.Decode(eventType, payload)
		if err != nil {
			t.Fatal(err)
		}
		check := func(after int64) {
			if balances[agg] < 0 {
				t.Errorf("%s went negative: %d", agg, balances[agg])
			}
			if after != balances[agg] {
				t.Errorf("%s v%d: event says balance %d, fold says %d", agg, version, after, balances[agg])
			}
		}
		switch v := p.(type) {
		case events.FundsDepositedV1:
			balances[agg] += v.AmountPaise
			depositsInLog += v.AmountPaise
			check(v.BalanceAfterPaise)
		case events.AccountDebitedV1:
			balances[agg] -= v.AmountPaise
			pm(v.PaymentID).debited++
			check(v.BalanceAfterPaise)
			// Every debit gives its payment an RRN: 12 digits, YDDDHHNNNNNN, unique.
			if !rrnForm.MatchString(v.RRN) {
				t.Errorf("payment %s debited with RRN %q, not 12 digits of the UPI form", v.PaymentID, v.RRN)
			} else if other, dup := rrns[v.RRN]; dup {
				t.Errorf("RRN %s given to payment %s and to payment %s", v.RRN, other, v.PaymentID)
			}
			rrns[v.RRN] = v.PaymentID
		case events.DebitRejectedV1:
			pm(v.PaymentID).rejected++
		case events.AccountCreditedV1:
			balances[agg] += v.AmountPaise
			pm(v.PaymentID).credited++
			check(v.BalanceAfterPaise)
		case events.DebitReversedV1:
			balances[agg] += v.AmountPaise
			pm(v.PaymentID).reversed++
			check(v.BalanceAfterPaise)
		case events.PaymentInitiatedV1:
			pm(v.PaymentID).initiated++
			paymentAmount[v.PaymentID] = v.AmountPaise
		case events.RefundReservedV1:
			r := rm(v.RefundID)
			r.reserved++
			r.payment, r.amount = v.PaymentID, v.AmountPaise
		case events.RefundInitiatedV1:
			rm(v.RefundID).initiated++
		case events.RefundDebitedV1:
			balances[agg] -= v.AmountPaise
			rm(v.RefundID).debited++
			check(v.BalanceAfterPaise)
			if other, dup := rrns[v.RRN]; dup && v.RRN != "" {
				t.Errorf("RRN %s given to refund %s and to %s", v.RRN, v.RefundID, other)
			}
			rrns[v.RRN] = v.RefundID
		case events.RefundDebitRejectedV1:
			rm(v.RefundID).rejected++
		case events.RefundCreditedV1:
			balances[agg] += v.AmountPaise
			rm(v.RefundID).credited++
			check(v.BalanceAfterPaise)
		case events.RefundDebitReversedV1:
			balances[agg] += v.AmountPaise
			rm(v.RefundID).reversed++
			check(v.BalanceAfterPaise)
		case events.RefundCompletedV1:
			rm(v.RefundID).completed++
		case events.RefundFailedV1:
			rm(v.RefundID).failed++
		case events.RefundSettledV1:
			rm(v.RefundID).settled++
		case events.PaymentCompletedV1:
			pm(v.PaymentID).completed++
		case events.PaymentFailedV1:
			pm(v.PaymentID).failed++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if depositsInLog != deposited {
		t.Errorf("deposits in the log = %d, deposited = %d", depositsInLog, deposited)
	}
	var total int64
	for _, b := range balances {
		total += b
	}
	if total != deposited {
		t.Errorf("money in all accounts = %d, total deposits = %d: money was lost or made up", total, deposited)
	}
	initiated, completed, failed := 0, 0, 0
	for id, m := range perPayment {
		initiated += m.initiated
		if m.initiated != 1 || m.completed+m.failed != 1 || m.debited > 1 || m.credited > 1 || m.reversed > 1 || m.rejected > 1 {
			t.Errorf("payment %s executed wrongly: %+v", id, *m)
			continue
		}
		if m.completed == 1 && (m.debited != 1 || m.credited != 1 || m.reversed != 0) {
			t.Errorf("completed payment %s moved money wrongly: %+v", id, *m)
		}
		if m.failed == 1 && (m.credited != 0 || m.debited != m.reversed) {
			t.Errorf("failed payment %s left money moved: %+v", id, *m)
		}
		completed += m.completed
		failed += m.failed
	}
	// Every refund ran once, moved money only when it completed, and a payment's completed refunds never
	// pass its amount.
	refunded := map[string]int64{}
	refundsDone := 0
	for id, r := range perRefund {
		if r.reserved != 1 || r.initiated != 1 || r.settled != 1 || r.completed+r.failed != 1 ||
			r.debited > 1 || r.credited > 1 || r.reversed > 1 || r.rejected > 1 {
			t.Errorf("refund %s executed wrongly: %+v", id, *r)
			continue
		}
		if r.completed == 1 && (r.debited != 1 || r.credited != 1 || r.reversed != 0) {
			t.Errorf("completed refund %s moved money wrongly: %+v", id, *r)
		}
		if r.failed == 1 && (r.credited != 0 || r.debited != r.reversed) {
			t.Errorf("failed refund %s left money moved: %+v", id, *r)
		}
		if r.completed == 1 {
			refunded[r.payment] += r.amount
			refundsDone++
		}
	}
	for pid, sum := range refunded {
		if perPayment[pid] == nil || perPayment[pid].completed != 1 || sum > paymentAmount[pid] {
			t.Errorf("payment %s (amount %d, %+v) refunded %d", pid, paymentAmount[pid], perPayment[pid], sum)
		}
	}
	t.Logf("log: %d refunds, %d completed", len(perRefund), refundsDone)
	if initiated != len(accepted) {
		t.Errorf("%d payments in the log for %d accepted keys: a retry executed twice or an accepted payment is missing", initiated, len(accepted))
	}
	for key, id := range accepted {
		if perPayment[id] == nil || perPayment[id].initiated != 1 {
			t.Errorf("accepted payment %s (key %s) is not in the log", id, key)
		}
	}
	t.Logf("log: %d payments, %d completed, %d failed; %d paise across %d accounts; %d distinct RRNs",
		initiated, completed, failed, total, len(balances), len(rrns))
}

// rrnForm is an RRN: the last digit of the year, the day of the year (001 to 366), the hour (00 to 23) and
// a 6-digit sequence.
var rrnForm = regexp.MustCompile(`^[0-9](00[1-9]|0[1-9][0-9]|[12][0-9]{2}|3[0-5][0-9]|36[0-6])([01][0-9]|2[0-3])[0-9]{6}$`)

// checkReadModels waits for the projections to catch up and compares them with the log's fold, and the
// balances the public API answers with the projection.
func checkReadModels(t *testing.T, ctx context.Context, pool *pgxpool.Pool, clients []*bankClient, accounts []bankAccount) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var mismatched int
		err := pool.QueryRow(ctx, `
			with fold as (
				select aggregate_id as vpa,
				       sum(case event_type when 'FundsDeposited' then (payload->>'amount_paise')::bigint
				                           when 'AccountCredited' then (payload->>'amount_paise')::bigint
				                           when 'DebitReversed' then (payload->>'amount_paise')::bigint
				                           when 'AccountDebited' then -(payload->>'amount_paise')::bigint
				                           when 'RefundCredited' then (payload->>'amount_paise')::bigint
				                           when 'RefundDebitReversed' then (payload->>'amount_paise')::bigint
				                           when 'RefundDebited' then -(payload->>'amount_paise')::bigint
				                           else 0 end) as balance
				from events where aggregate_type = 'account' group by aggregate_id)
			select count(*) from fold left join accounts a using (vpa)
			where a.balance_paise is distinct from fold.balance`).Scan(&mismatched)
		if err != nil {
			t.Fatalf("compare accounts projection with the log: %v", err)
		}
		if mismatched == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d accounts in the projection differ from the log's fold", mismatched)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var badSums int
	if err := pool.QueryRow(ctx, `
		select count(*) from accounts a
		where a.balance_paise <> coalesce((select sum(case when kind in ('DEBIT', 'REFUND_DEBIT') then -amount_paise else amount_paise end)
		                                   from account_transactions x where x.vpa = a.vpa), 0)`).Scan(&badSums); err != nil {
		t.Fatalf("compare balances with movements: %v", err)
	}
	if badSums != 0 {
		t.Errorf("%d accounts whose balance is not the sum of their movements", badSums)
	}
	for _, a := range accounts {
		st, b, _ := clients[a.client].do(ctx, http.MethodGet, "/v1/accounts/"+a.vpa+"/balance", "", nil)
		if st != 200 {
			t.Errorf("GET balance of %s: %d %s", a.vpa, st, b)
			continue
		}
		var bal struct {
			BalancePaise int64 `json:"balance_paise"`
		}
		_ = json.Unmarshal(b, &bal)
		var want int64
		if err := pool.QueryRow(ctx, `select balance_paise from accounts where vpa = $1`, a.vpa).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if bal.BalancePaise != want || bal.BalancePaise < 0 {
			t.Errorf("API balance of %s = %d, projection %d", a.vpa, bal.BalancePaise, want)
		}
	}
}

// merchantPayment is an accepted payment to a merchant, for its client to refund.
type merchantPayment struct {
	id     string
	client int
	amount int64
}

// completedPayment long-polls a payment as its payee's client until it is terminal, and reports whether
// it completed.
func completedPayment(ctx context.Context, t *testing.T, c *bankClient, id string) bool {
	for ctx.Err() == nil {
		st, b, _ := c.do(ctx, http.MethodGet, "/v1/payments/"+id+"?wait=5s", "", nil)
		var p struct {
			Status string `json:"status"`
		}
		if st == 200 && json.Unmarshal(b, &p) == nil && p.Status != "PENDING" {
			return p.Status == "COMPLETED"
		}
		time.Sleep(20 * time.Millisecond) // not visible yet, or a service restarting
	}
	t.Errorf("payment %s: not terminal before the deadline", id)
	return false
}

// paymentAmountOf reads a payment's amount as its payer's client sees it.
func paymentAmountOf(ctx context.Context, c *bankClient, id string, amount *int64) error {
	for ctx.Err() == nil {
		st, b, _ := c.do(ctx, http.MethodGet, "/v1/payments/"+id, "", nil)
		var p struct {
			AmountPaise int64 `json:"amount_paise"`
		}
		if st == 200 && json.Unmarshal(b, &p) == nil {
			*amount = p.AmountPaise
			return nil
		}
		time.Sleep(20 * time.Millisecond) // not projected yet, or a service restarting
	}
	return fmt.Errorf("payment %s: no amount before the deadline", id)
}
