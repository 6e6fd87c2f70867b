package main_test

// Disputes end to end, through the real services: the merchant accepts one (the payer is refunded once),
// rejects one (no money moves), ignores one until COMPLAINT_TAT passes (the chargeback refunds the payer);
// a merchant without the funds (the chargeback waits, visible to operators, and completes once money
// arrives); and an accept racing the chargeback, fired many times at once at the due time (the payer is
// refunded exactly once). The books hold throughout.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/shared/contract"
	"upi/shared/platform/servicetoken"
	"upi/testenv"
)

type disputeView struct {
	ComplaintID    string  `json:"complaint_id"`
	PaymentID      string  `json:"payment_id"`
	Status         string  `json:"status"`
	ResolutionCode *string `json:"resolution_code"`
	ResolvedBy     *string `json:"resolved_by"`
	DueAt          *string `json:"due_at"`
	Note           string  `json:"note"`
	Chargeback     bool    `json:"chargeback"`
	RefundID       *string `json:"refund_id"`
	RefundStatus   *string `json:"refund_status"`
	Code           string  `json:"code"` // of a problem
}

func (d disputeView) String() string {
	s := func(p *string) string {
		if p == nil {
			return "-"
		}
		return *p
	}
	return fmt.Sprintf("%s %s by %s chargeback=%v refund %s %s", d.Status, s(d.ResolutionCode), s(d.ResolvedBy), d.Chargeback,
		s(d.RefundID), s(d.RefundStatus))
}

func TestDisputesAcceptedRejectedAndChargedBack(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole system; skipped with -short")
	}
	t.Parallel()
	const tat = 5 * time.Second
	dbURL := testenv.Postgres(t)
	cmd := testenv.StartService(t, "command-service", map[string]string{"DATABASE_URL": dbURL, "COMPLAINT_TAT": tat.String()})
	qry := testenv.StartService(t, "query-service", map[string]string{"DATABASE_URL": dbURL})
	cons := testenv.StartService(t, "event-consumers", map[string]string{"DATABASE_URL": dbURL, "COMMAND_SERVICE_URL": cmd.URL})
	gw := testenv.StartService(t, "api-gateway", map[string]string{
		"REDIS_URL": testenv.Redis(t), "COMMAND_SERVICE_URL": cmd.URL, "QUERY_SERVICE_URL": qry.URL,
		"EVENT_CONSUMERS_URL": cons.URL, "API_KEYS": "psp-a=key-a,psp-b=key-b,psp-c=key-c", "OPERATOR_KEYS": "auditor=audit-key",
	})
	hc := &http.Client{Timeout: 15 * time.Second}
	a, b, other := &bankClient{base: gw.URL, key: "key-a", http: hc}, &bankClient{base: gw.URL, key: "key-b", http: hc},
		&bankClient{base: gw.URL, key: "key-c", http: hc}
	ops := &bankClient{base: gw.URL, key: "audit-key", http: hc}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	mustPost := func(c *bankClient, path, key string, body any, want int) []byte {
		t.Helper()
		st, out := c.post(ctx, t, path, key, body)
		if st != want {
			t.Fatalf("POST %s: %d %s", path, st, out)
		}
		return out
	}
	const deposited = 100_000
	mustPost(a, "/v1/accounts", "o1", map[string]any{"vpa": "alice@okbank", "holder_name": "Alice"}, 201)
	mustPost(b, "/v1/accounts", "o2", map[string]any{"vpa": "shop@hdfc", "holder_name": "Shop", "type": "ENTITY", "mcc": "5411"}, 201)
	mustPost(b, "/v1/accounts", "o3", map[string]any{"vpa": "poor@hdfc", "holder_name": "Poor", "type": "ENTITY", "mcc": "5411"}, 201)
	mustPost(a, "/v1/accounts/alice@okbank/deposits", "d1", map[string]any{"amount_paise": deposited, "reference": "top-1"}, 201)

	// balance waits until vpa's balance reads want (read models catch up), and fails if it never does.
	balance := func(vpa string, want int64) {
		t.Helper()
		var got struct {
			Balance int64 `json:"balance_paise"`
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, body, _ := a.do(ctx, http.MethodGet, "/v1/accounts/"+vpa+"/balance", "", nil)
			if st == http.StatusNotFound || st == http.StatusForbidden { // not alice's: read with the merchant's key
				st, body, _ = b.do(ctx, http.MethodGet, "/v1/accounts/"+vpa+"/balance", "", nil)
			}
			if st == 200 && json.Unmarshal(body, &got) == nil && got.Balance == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("balance of %s: %d %s, want %d", vpa, st, body, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	pay := func(key, payee string, amount int64) string {
		t.Helper()
		var p struct {
			PaymentID string `json:"payment_id"`
			Position  string `json:"position"`
		}
		_ = json.Unmarshal(mustPost(a, "/v1/payments", key, map[string]any{"payer_vpa": "alice@okbank", "payee_vpa": payee, "amount_paise": amount}, 202), &p)
		st, body := awaitPayment(ctx, a, p.PaymentID, p.Position)
		if st != 200 || !strings.Contains(string(body), `"COMPLETED"`) {
			t.Fatalf("payment %s: %d %s", p.PaymentID, st, body)
		}
		return p.PaymentID
	}
	raise := func(payment, reason string) disputeView {
		t.Helper()
		var v disputeView
		body := mustPost(a, "/v1/payments/"+payment+"/complaints", "c-"+payment, map[string]any{"reason_code": reason}, 201)
		if json.Unmarshal(body, &v) != nil || v.Status != "RAISED" || v.DueAt == nil {
			t.Fatalf("%s on %s: %s", reason, payment, body)
		}
		return v
	}
	// answer retries only while there is no answer (a 409 COMPLAINT_CLOSED is one).
	answer := func(c *bankClient, id, verb, key string, body any) (int, disputeView, []byte) {
		var st int
		var out []byte
		for {
			st, out, _ = c.do(ctx, http.MethodPost, "/v1/complaints/"+id+"/"+verb, key, body)
			if (st != 0 && st < 500 && st != 429 && !strings.Contains(string(out), "IDEMPOTENCY_KEY_IN_USE")) || ctx.Err() != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		var v disputeView
		_ = json.Unmarshal(out, &v)
		return st, v, out
	}
	// settled waits until the complaint reads as want says.
	settled := func(c *bankClient, id string, want func(disputeView) bool) disputeView {
		t.Helper()
		var v disputeView
		deadline := time.Now().Add(45 * time.Second)
		for {
			st, body, _ := c.do(ctx, http.MethodGet, "/v1/complaints/"+id, "", nil)
			if st == 200 && json.Unmarshal(body, &v) == nil && want(v) {
				return v
			}
			if time.Now().After(deadline) {
				t.Fatalf("complaint %s: %d %s", id, st, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	refunded := func(v disputeView) bool { return v.RefundStatus != nil && *v.RefundStatus == "COMPLETED" }
	alice, shop := int64(deposited), int64(0)

	// Accepted: RESOLVED RET by the merchant, the disputed amount refunded once.
	p1 := pay("p1", "shop@hdfc", 5000)
	alice, shop = alice-5000, shop+5000
	d1 := raise(p1, "U008")
	if st, _, body := answer(other, d1.ComplaintID, "accept", "acc-other", nil); st != 404 {
		t.Errorf("an accept by someone else than the merchant: %d %s", st, body)
	}
	if st, _, body := answer(a, d1.ComplaintID, "accept", "acc-payer", nil); st != 404 {
		t.Errorf("an accept by the payer's owner: %d %s", st, body)
	}
	st, v, body := answer(b, d1.ComplaintID, "accept", "acc-1", map[string]any{"note": "sorry"})
	if st != 200 || v.Status != "RESOLVED" || v.ResolutionCode == nil || *v.ResolutionCode != "RET" || v.RefundID == nil || v.Chargeback {
		t.Fatalf("the merchant accepts: %d %s", st, body)
	}
	if st, again, body := answer(b, d1.ComplaintID, "accept", "acc-1-again", nil); st != 200 || again.RefundID == nil || *again.RefundID != *v.RefundID {
		t.Errorf("accepting again: %d %s", st, body)
	}
	if st, v, body := answer(b, d1.ComplaintID, "reject", "rej-after-acc", map[string]any{"reason": "changed my mind"}); st != 409 || v.Code != "COMPLAINT_CLOSED" {
		t.Errorf("a reject after the accept: %d %s", st, body)
	}
	alice, shop = alice+5000, shop-5000
	settled(a, d1.ComplaintID, refunded)
	balance("alice@okbank", alice)
	balance("shop@hdfc", shop)

	// Rejected: REJECTED MERCHANT_REJECTED with the reason; no money moves.
	p2 := pay("p2", "shop@hdfc", 3000)
	alice, shop = alice-3000, shop+3000
	d2 := raise(p2, "U021")
	if st, _, body := answer(b, d2.ComplaintID, "reject", "rej-empty", map[string]any{"reason": " "}); st != 400 {
		t.Errorf("a reject without a reason: %d %s", st, body)
	}
	st, v, body = answer(b, d2.ComplaintID, "reject", "rej-2", map[string]any{"reason": "delivered on 3 Dec"})
	if st != 200 || v.Status != "REJECTED" || v.ResolutionCode == nil || *v.ResolutionCode != "MERCHANT_REJECTED" || v.Note != "delivered on 3 Dec" || v.RefundID != nil {
		t.Fatalf("the merchant rejects: %d %s", st, body)
	}
	if st, v, body := answer(b, d2.ComplaintID, "accept", "acc-after-rej", nil); st != 409 || v.Code != "COMPLAINT_CLOSED" {
		t.Errorf("an accept after the reject: %d %s", st, body)
	}

	// Ignored: once COMPLAINT_TAT passes the chargeback refunds the payer, filed CHARGEBACK in settlement.
	p3 := pay("p3", "shop@hdfc", 2000)
	alice, shop = alice-2000, shop+2000
	d3 := raise(p3, "U023")

	// No funds: the merchant withdrew everything; the chargeback waits for money.
	p4 := pay("p4", "poor@hdfc", 4000)
	alice -= 4000
	mustPost(b, "/v1/accounts/poor@hdfc/withdrawals", "w1", map[string]any{"amount_paise": 4000, "reference": "out-1"}, 202)
	d4 := raise(p4, "U008")

	v3 := settled(a, d3.ComplaintID, refunded)
	if v3.Status != "RESOLVED" || *v3.ResolutionCode != "CHARGEBACK" || !v3.Chargeback || *v3.ResolvedBy != "SYSTEM" {
		t.Errorf("the ignored dispute: %s", v3)
	}
	alice, shop = alice+2000, shop-2000
	balance("alice@okbank", alice)
	balance("shop@hdfc", shop)
	if st, v, body := answer(b, d3.ComplaintID, "accept", "acc-late", nil); st != 409 || v.Code != "COMPLAINT_TAT_PASSED" {
		t.Errorf("an accept after the TAT: %d %s", st, body)
	}
	if st, v, body := answer(b, d3.ComplaintID, "reject", "rej-late", map[string]any{"reason": "late"}); st != 409 || v.Code != "COMPLAINT_TAT_PASSED" {
		t.Errorf("a reject after the TAT: %d %s", st, body)
	}
	var typ string
	for deadline := time.Now().Add(30 * time.Second); typ == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_ = pool.QueryRow(ctx, `select min(type) from settlement_lines where movement_id = $1`, *v3.RefundID).Scan(&typ)
	}
	if typ != "CHARGEBACK" {
		t.Errorf("the chargeback's movement is filed %q, want CHARGEBACK", typ)
	}

	// The operators see the chargeback waiting for the merchant's funds.
	awaiting := func() bool {
		var queue struct {
			Items []disputeView `json:"items"`
		}
		_, raw, _ := ops.do(ctx, http.MethodGet, "/v1/ops/complaints?status=RESOLVED", "", nil)
		_ = json.Unmarshal(raw, &queue)
		for _, c := range queue.Items {
			if c.ComplaintID == d4.ComplaintID {
				return c.Chargeback && c.RefundStatus != nil && *c.RefundStatus == "AWAITING_FUNDS"
			}
		}
		return false
	}
	for deadline := time.Now().Add(45 * time.Second); !awaiting(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the chargeback without funds is not AWAITING_FUNDS in the operators' queue")
		}
	}
	// Still waiting a few rounds later: a merchant without money is not charged again and again.
	time.Sleep(2 * time.Second)
	var attempts int
	if err := pool.QueryRow(ctx, `select count(*) from events where aggregate_id = $1 and event_type = 'RefundReserved'`, p4).Scan(&attempts); err != nil || attempts != 1 {
		t.Errorf("refunds reserved for the chargeback without funds: %d (%v), want 1", attempts, err)
	}
	balance("alice@okbank", alice)
	mustPost(b, "/v1/accounts/poor@hdfc/deposits", "d-poor", map[string]any{"amount_paise": 4000, "reference": "in-1"}, 201)
	v4 := settled(a, d4.ComplaintID, refunded)
	if v4.Status != "RESOLVED" || *v4.ResolutionCode != "CHARGEBACK" || v4.RefundID == nil || *v4.RefundID == d4.ComplaintID {
		t.Errorf("the chargeback once money arrived: %s", v4)
	}
	alice += 4000
	balance("alice@okbank", alice)
	balance("poor@hdfc", 0)

	// The race: at the due time, the merchant accepts 20 times at once while the chargeback is asked 20
	// times at once (besides the complaints process): the payer is refunded exactly once.
	p5 := pay("p5", "shop@hdfc", 6000)
	alice, shop = alice-6000, shop+6000
	d5 := raise(p5, "U008")
	due, err := time.Parse(time.RFC3339Nano, *d5.DueAt)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(due.Add(-20 * time.Millisecond)))
	var (
		wg               sync.WaitGroup
		mu               sync.Mutex
		accepts, tooLate int
	)
	// The complaints process's own calls, signed as event-consumers signs them.
	asConsumers := &http.Client{Timeout: 15 * time.Second, Transport: servicetoken.NewSigner(servicetoken.EventConsumers,
		servicetoken.DevRoot(servicetoken.EventConsumers)).Transport(servicetoken.CommandService, nil)}
	chargeback, _ := json.Marshal(contract.ComplaintResolutionsRequest{Complaints: []contract.ComplaintRef{{
		ComplaintID: uuidOf(t, d5.ComplaintID), PaymentID: uuidOf(t, p5)}}})
	for i := 0; i < 20; i++ {
		wg.Add(2)
		go func(i int) {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 2 * time.Millisecond)
			st, v, body := answer(b, d5.ComplaintID, "accept", fmt.Sprintf("race-%d", i), nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case st == 200 && v.ResolutionCode != nil && *v.ResolutionCode == "RET":
				accepts++
			case st == 409 && v.Code == "COMPLAINT_TAT_PASSED":
				tooLate++
			default:
				t.Errorf("a racing accept: %d %s", st, body)
			}
		}(i)
		go func(i int) {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 2 * time.Millisecond)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, cmd.URL+contract.PathComplaintChargebacks, bytes.NewReader(chargeback))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(contract.HeaderClientID, "event-consumers")
			resp, err := asConsumers.Do(req)
			if err != nil {
				t.Errorf("a racing chargeback: %v", err)
				return
			}
			resp.Body.Close()
			// 503: the event store shed the call under load, nothing appended (the process asks again).
			if resp.StatusCode != 200 && resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("a racing chargeback: %d", resp.StatusCode)
			}
		}(i)
	}
	wg.Wait()
	v5 := settled(a, d5.ComplaintID, refunded)
	t.Logf("race: %d accepts answered 200, %d too late; the dispute: %s", accepts, tooLate, v5)
	switch {
	case *v5.ResolutionCode == "RET" && (accepts == 0 || v5.Chargeback):
		t.Errorf("settled by the accept, yet %d accepts were answered 200: %s", accepts, v5)
	case *v5.ResolutionCode == "CHARGEBACK" && accepts != 0:
		t.Errorf("charged back, yet %d accepts were answered 200", accepts)
	}
	if err := pool.QueryRow(ctx, `select count(*) from events where aggregate_id = $1 and event_type = 'RefundReserved'`, p5).Scan(&attempts); err != nil || attempts != 1 {
		t.Errorf("refunds reserved in the race: %d (%v), want 1", attempts, err)
	}
	alice, shop = alice+6000, shop-6000
	balance("alice@okbank", alice)
	balance("shop@hdfc", shop)

	// The books hold: the ledger check through the gateway, and event-consumers verify.
	if st, out, _ := ops.do(ctx, http.MethodGet, "/v1/ops/ledger-check", "", nil); st != 200 || !strings.Contains(string(out), `"ok":true`) {
		t.Errorf("ledger check: %d %s", st, out)
	}
	verifyLedger(t, pool, dbURL)
}

func uuidOf(t *testing.T, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return id
}
