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
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"upi/shared/events"
	"upi/shared/testenv"
)

type bankAccount struct {
	vpa    string
	client int // index of its owner in the test's clients
}

type bankClient struct {
	base, key string
	http      *http.Client
	// answered, when set, sees every answer (a transport error is status 0) and how long it took; it
	// must be safe for concurrent use.
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
			c.answered(0, nil, nil, time.Since(start))
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
	workers := envInt("BANK_WORKERS", 16)
	accountsPerClient := 6

	dbURL := testenv.Postgres(t)
	redisURL := testenv.Redis(t)
	cmd := testenv.StartService(t, "command-service", map[string]string{"DATABASE_URL": dbURL,
		// Payer limits off: the bank pays many times a day from each account.
		"LIMIT_DAILY_PAISE": "0", "LIMIT_DAILY_P2P_COUNT": "0", "LIMIT_NEW_ACCOUNT_PAISE": "0"})
	qry := testenv.StartService(t, "query-service", map[string]string{"DATABASE_URL": dbURL})
	cons := testenv.StartService(t, "event-consumers", map[string]string{"DATABASE_URL": dbURL, "COMMAND_SERVICE_URL": cmd.URL})
	gw := testenv.StartService(t, "api-gateway", map[string]string{
		"REDIS_URL": redisURL, "COMMAND_SERVICE_URL": cmd.URL, "QUERY_SERVICE_URL": qry.URL,
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

	accepted := payRandomly(ctx, t, clients, accounts, payments, workers)
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
	t.Logf("%d payments accepted, %d chaos actions (kills and flushes)", len(accepted), kills.Load())

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	waitAllTerminal(t, ctx, pool)
	checkLog(t, ctx, pool, accepted, deposited)
	checkReadModels(t, ctx, pool, clients, accounts)
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
			if st, b := c.post(ctx, t, "/v1/accounts", "open-"+vpa, map[string]any{"vpa": vpa, "holder_name": "Holder " + vpa}); st != 201 {
				t.Fatalf("open %s: %d %s", vpa, st, b)
			}
			amount := int64(20000 + rand.IntN(80000))
			if st, b := c.post(ctx, t, "/v1/accounts/"+vpa+"/deposits", "fund-"+vpa, map[string]any{"amount_paise": amount, "reference": "fund"}); st != 201 {
				t.Fatalf("fund %s: %d %s", vpa, st, b)
			}
			deposited += amount
			accounts = append(accounts, bankAccount{vpa, ci})
		}
	}

	return accounts, deposited
}

// payRandomly sends n payments from workers goroutines: random payer (one of the client's own), random
// payee, random amount (some overdraw). A third of them are sent twice at once under the same key; every
// one is retried until definitive. It returns the accepted ones, idempotency key -> payment id.
func payRandomly(ctx context.Context, t *testing.T, clients []*bankClient, accounts []bankAccount, payments, workers int) map[string]string {
	var (
		mu       sync.Mutex
		accepted = map[string]string{} // idempotency key -> payment id
		declined atomic.Int32
	)
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
				var cw sync.WaitGroup
				for i := range copies {
					cw.Add(1)
					go func() {
						defer cw.Done()
						st, b := clients[ci].post(ctx, t, "/v1/payments", key, body)
						if st != 202 {
							t.Errorf("payment %s: %d %s", key, st, b)
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
			}
		}()
	}
	wg.Wait()
	return accepted
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
			                  and e.event_type in ('PaymentCompleted', 'PaymentFailed'))`).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d payments never reached a terminal state", open)
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
	var depositsInLog int64
	lastVersion := map[string]int{}
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
	if initiated != len(accepted) {
		t.Errorf("%d payments in the log for %d accepted keys: a retry executed twice or an accepted payment is missing", initiated, len(accepted))
	}
	for key, id := range accepted {
		if perPayment[id] == nil || perPayment[id].initiated != 1 {
			t.Errorf("accepted payment %s (key %s) is not in the log", id, key)
		}
	}
	t.Logf("log: %d payments, %d completed, %d failed; %d paise across %d accounts", initiated, completed, failed, total, len(balances))
}

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
		where a.balance_paise <> coalesce((select sum(case kind when 'DEBIT' then -amount_paise else amount_paise end)
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
