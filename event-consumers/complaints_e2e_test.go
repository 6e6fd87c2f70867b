package main_test

// Complaints end to end, through the real services: answered at once from the payment's history, answered
// when an in-flight payment ends, disputes left to the merchant, one open complaint per payment under
// concurrent raises, and who may read what.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"upi/testenv"
)

type complaintView struct {
	ComplaintID    string  `json:"complaint_id"`
	PaymentID      string  `json:"payment_id"`
	ReasonCode     string  `json:"reason_code"`
	Status         string  `json:"status"`
	ResolutionCode *string `json:"resolution_code"`
	DueAt          *string `json:"due_at"`
}

func (c complaintView) resolution() string {
	if c.ResolutionCode == nil {
		return ""
	}
	return *c.ResolutionCode
}

func TestComplaintsResolvedFromTheLogAndLeftToMerchants(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole system; skipped with -short")
	}
	t.Parallel()
	dbURL := testenv.Postgres(t)
	cmd := testenv.StartService(t, "command-service", map[string]string{"DATABASE_URL": dbURL})
	qry := testenv.StartService(t, "query-service", map[string]string{"DATABASE_URL": dbURL})
	cons := testenv.StartService(t, "event-consumers", map[string]string{"DATABASE_URL": dbURL, "COMMAND_SERVICE_URL": cmd.URL})
	gw := testenv.StartService(t, "api-gateway", map[string]string{
		"REDIS_URL": testenv.Redis(t), "COMMAND_SERVICE_URL": cmd.URL, "QUERY_SERVICE_URL": qry.URL,
		"EVENT_CONSUMERS_URL": cons.URL, "API_KEYS": "psp-a=key-a,psp-b=key-b,psp-c=key-c", "OPERATOR_KEYS": "auditor=audit-key",
	})
	hc := &http.Client{Timeout: 15 * time.Second}
	a, b, other := &bankClient{base: gw.URL, key: "key-a", http: hc}, &bankClient{base: gw.URL, key: "key-b", http: hc},
		&bankClient{base: gw.URL, key: "key-c", http: hc}
	ops := &opsClient{base: gw.URL, key: "audit-key", http: hc}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	mustPost := func(c *bankClient, path, key string, body map[string]any, want int) []byte {
		t.Helper()
		st, out := c.post(ctx, t, path, key, body)
		if st != want {
			t.Fatalf("POST %s: %d %s", path, st, out)
		}
		return out
	}
	mustPost(a, "/v1/accounts", "o1", map[string]any{"vpa": "alice@okbank", "holder_name": "Alice"}, 201)
	mustPost(b, "/v1/accounts", "o2", map[string]any{"vpa": "bob@axis", "holder_name": "Bob"}, 201)
	mustPost(b, "/v1/accounts", "o3", map[string]any{"vpa": "shop@hdfc", "holder_name": "Shop", "type": "ENTITY", "mcc": "5411"}, 201)
	mustPost(a, "/v1/accounts/alice@okbank/deposits", "d1", map[string]any{"amount_paise": 100000, "reference": "top-1"}, 201)

	pay := func(key, payee string, amount int64, wait bool) string {
		t.Helper()
		var p struct {
			PaymentID string `json:"payment_id"`
			Position  string `json:"position"`
		}
		_ = json.Unmarshal(mustPost(a, "/v1/payments", key, map[string]any{"payer_vpa": "alice@okbank", "payee_vpa": payee, "amount_paise": amount}, 202), &p)
		if wait {
			st, body := awaitPayment(ctx, a, p.PaymentID, p.Position)
			if st != 200 || strings.Contains(string(body), `"PENDING"`) {
				t.Fatalf("payment %s: %d %s", p.PaymentID, st, body)
			}
		}
		return p.PaymentID
	}
	raise := func(c *bankClient, payment, key, reason string) (int, complaintView, []byte) {
		t.Helper()
		// Retried only while the answer is no answer (a 409 COMPLAINT_EXISTS is one).
		var st int
		var body []byte
		for {
			st, body, _ = c.do(ctx, http.MethodPost, "/v1/payments/"+payment+"/complaints", key, map[string]any{"reason_code": reason, "description": "help"})
			if (st != 0 && st < 500 && st != 429 && !strings.Contains(string(body), "IDEMPOTENCY_KEY_IN_USE")) || ctx.Err() != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		var v complaintView
		_ = json.Unmarshal(body, &v)
		return st, v, body
	}
	p2p := pay("p1", "bob@axis", 1000, true)
	failed := pay("p2", "bob@axis", 10_000_000, true) // INSUFFICIENT_FUNDS: never debited
	p2m := pay("p3", "shop@hdfc", 5000, true)
	refunded := pay("p4", "shop@hdfc", 3000, true)
	mustPost(b, "/v1/payments/"+refunded+"/refunds", "r1", map[string]any{"amount_paise": 3000, "reason": "returned"}, 202)

	// Answered at once from the log.
	for _, c := range []struct{ payment, reason, status, code string }{
		{p2p, "U010", "RESOLVED", "107"},
		{p2p, "U005", "RESOLVED", "107"},
		{failed, "U005", "RESOLVED", "144"},
		{failed, "U008", "RESOLVED", "144"},
		{p2p, "U008", "REJECTED", "NOT_A_MERCHANT_PAYMENT"},
		{p2m, "U022", "RESOLVED", "107"},
	} {
		st, v, body := raise(a, c.payment, "c-"+c.payment+c.reason, c.reason)
		if st != 201 || v.Status != c.status || v.resolution() != c.code {
			t.Errorf("%s on %s: %d %s, want %s %s", c.reason, c.payment, st, body, c.status, c.code)
		}
	}

	// A dispute with the merchant: raised, due by COMPLAINT_TAT, read by the payer's and the merchant's
	// owners, nobody else; one open complaint per payment.
	st, dispute, body := raise(a, p2m, "c-dispute", "U008")
	if st != 201 || dispute.Status != "RAISED" || dispute.DueAt == nil {
		t.Fatalf("U008 on a completed P2M payment: %d %s", st, body)
	}
	if st, _, body := raise(a, p2m, "c-dispute-again", "U023"); st != 409 || !strings.Contains(string(body), "COMPLAINT_EXISTS") {
		t.Errorf("a second open complaint: %d %s", st, body)
	}
	if st, _, body := raise(b, p2p, "c-not-mine", "U010"); st != 404 {
		t.Errorf("a complaint by someone else than the payer's owner: %d %s", st, body)
	}
	for _, c := range []struct {
		who  *bankClient
		want int
	}{{a, 200}, {b, 200}, {other, 404}} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, body, _ := c.who.do(ctx, http.MethodGet, "/v1/complaints/"+dispute.ComplaintID, "", nil)
			if st == c.want || time.Now().After(deadline) {
				if st != c.want {
					t.Errorf("%s reads the dispute: %d %s", c.who.key, st, body)
				}
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// Raised twice at once on one payment: exactly one is open.
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		refused int
	)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st, _, body := raise(a, refunded, fmt.Sprintf("race-%d", i), "U021")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case st == 201:
				created++
			case st == 409 && strings.Contains(string(body), "COMPLAINT_EXISTS"):
				refused++
			default:
				t.Errorf("concurrent raise: %d %s", st, body)
			}
		}(i)
	}
	wg.Wait()
	if created != 1 || refused != 7 {
		t.Errorf("8 concurrent raises: %d raised, %d refused; want 1 and 7", created, refused)
	}

	// In flight when raised: answered when the payment ends (or at once, if it ended first).
	inflight := pay("p5", "bob@axis", 700, false)
	st, v, body := raise(a, inflight, "c-inflight", "U010")
	if st != 201 {
		t.Fatalf("U010 on a payment in flight: %d %s", st, body)
	}
	for v.Status == "RAISED" {
		if ctx.Err() != nil {
			t.Fatalf("the complaint on the payment in flight was never resolved: %+v", v)
		}
		time.Sleep(100 * time.Millisecond)
		_, body, _ := a.do(ctx, http.MethodGet, "/v1/complaints/"+v.ComplaintID, "", nil)
		_ = json.Unmarshal(body, &v)
	}
	if v.Status != "RESOLVED" || v.resolution() != "107" {
		t.Errorf("the complaint on the payment in flight ended %+v", v)
	}

	// The operators' queue: the raised disputes; a client's key may not read it.
	if st, body, _ := (&opsClient{base: gw.URL, key: "key-a", http: hc}).get(ctx, t, "/v1/ops/complaints", ""); st != 403 {
		t.Errorf("a client reads the complaint queue: %d %s", st, body)
	}
	var queue struct {
		Items []complaintView `json:"items"`
	}
	st, raw, _ := ops.get(ctx, t, "/v1/ops/complaints?status=RAISED", "")
	if st != 200 || json.Unmarshal(raw, &queue) != nil || len(queue.Items) != 2 {
		t.Fatalf("the raised queue: %d %s", st, raw)
	}
	for _, c := range queue.Items {
		if c.Status != "RAISED" || c.DueAt == nil || (c.PaymentID != p2m && c.PaymentID != refunded) {
			t.Errorf("in the raised queue: %+v", c)
		}
	}
}

// awaitPayment reads a payment until it has ended (a loaded machine may keep the projection behind the
// read's min_position wait for a while).
func awaitPayment(ctx context.Context, c *bankClient, id, pos string) (int, []byte) {
	for {
		st, body, _ := c.do(ctx, http.MethodGet, "/v1/payments/"+id+"?wait=10s&min_position="+url.QueryEscape(pos), "", nil)
		if (st == 200 && !strings.Contains(string(body), `"PENDING"`)) || ctx.Err() != nil {
			return st, body
		}
		time.Sleep(100 * time.Millisecond)
	}
}
