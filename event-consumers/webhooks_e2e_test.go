package main_test

// Webhooks against real receivers (docs/webhooks.md): two clients, an endpoint each on a receiver of its
// own that verifies every signature and misbehaves at random (500s, 503 with Retry-After, hangs past the
// sender's timeout), a workload of payments and refunds between the two clients' accounts through the real
// gateway, and the consumers killed (SIGKILL) and restarted in the middle of it. Afterwards each receiver
// must have seen, among deliveries whose signature verified, exactly the state changes of the log that
// concern its client: no more (no other client's resource), no fewer; each resource's first deliveries in
// log order; no bad signature; and every delivery recorded as succeeded, readable in the delivery log by
// its client only.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"upi/shared/contract/webhook"
	"upi/shared/platform/pii"
	"upi/testenv"
)

// receiver is one client's webhook endpoint.
type receiver struct {
	t      *testing.T
	name   string
	rng    *rand.Rand
	chaos  bool
	server *httptest.Server

	mu       sync.Mutex
	secrets  []string
	attempts map[string]int    // event id -> attempts seen (verified)
	first    []string          // event ids in the order of their first (verified) receipt
	resource map[string]string // event id -> resource id
	types    map[string]string // event id -> type
	data     map[string]json.RawMessage
	badSig   atomic.Int32
	mismatch atomic.Int32 // UPI-Event-ID not the body's id
}

func newReceiver(t *testing.T, name string, chaos bool) *receiver {
	r := &receiver{t: t, name: name, chaos: chaos, rng: rand.New(rand.NewPCG(uint64(len(name)), 7)),
		attempts: map[string]int{}, resource: map[string]string{}, types: map[string]string{}, data: map[string]json.RawMessage{}}
	r.server = httptest.NewServer(r)
	t.Cleanup(r.server.Close)
	return r
}

func (r *receiver) setSecrets(s ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets = s
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		return
	}
	r.mu.Lock()
	secrets := r.secrets
	r.mu.Unlock()
	if err := webhook.Verify(req.Header.Get(webhook.HeaderSignature), body, secrets, 0, time.Now()); err != nil {
		r.badSig.Add(1)
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	var env webhook.Envelope[map[string]any]
	if err := json.Unmarshal(body, &env); err != nil {
		r.t.Errorf("%s: body %s: %v", r.name, body, err)
		return
	}
	if req.Header.Get(webhook.HeaderEventID) != env.ID {
		r.mismatch.Add(1)
	}
	idField := map[string]string{"payment": "payment_id", "refund": "refund_id", "collect_request": "collect_id",
		"withdrawal": "withdrawal_id"}[webhook.Resource(env.Type)]
	resource, _ := env.Data[idField].(string)
	var raw struct {
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(body, &raw)

	r.mu.Lock()
	r.attempts[env.ID]++
	n := r.attempts[env.ID]
	if n == 1 {
		r.first = append(r.first, env.ID)
		r.resource[env.ID], r.types[env.ID], r.data[env.ID] = resource, env.Type, raw.Data
	}
	roll := r.rng.Float64()
	chaos := r.chaos
	r.mu.Unlock()

	if chaos {
		switch {
		case n == 1 && roll < 0.25, n > 1 && roll < 0.1:
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		case n == 1 && roll < 0.30:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		case n == 1 && roll < 0.35:
			// Hang past the sender's timeout, then answer 2xx to nobody.
			select {
			case <-time.After(1500 * time.Millisecond):
			case <-req.Context().Done():
			}
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func TestWebhooksDeliverEveryStateChangeToItsOwners(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole system")
	}
	payments := envInt("WEBHOOK_TEST_PAYMENTS", 300)
	dbURL := testenv.Postgres(t)
	redisURL := testenv.Redis(t)
	cmd := testenv.StartService(t, "command-service", map[string]string{"DATABASE_URL": dbURL,
		"LIMIT_DAILY_PAISE": "0", "LIMIT_DAILY_P2P_COUNT": "0", "LIMIT_NEW_ACCOUNT_PAISE": "0"})
	qry := testenv.StartService(t, "query-service", map[string]string{"DATABASE_URL": dbURL})
	cons := testenv.StartService(t, "event-consumers", map[string]string{"DATABASE_URL": dbURL, "COMMAND_SERVICE_URL": cmd.URL,
		// The receivers are on loopback; the schedule is short so that the test does not wait for hours.
		"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_RETRY_BASE": "100ms", "WEBHOOK_RETRY_MAX": "1s",
		"WEBHOOK_TIMEOUT": "500ms", "WEBHOOK_POLL": "50ms",
		// A dead endpoint is disabled after failing for this long.
		"WEBHOOK_DISABLE_AFTER": "3s"})
	gw := testenv.StartService(t, "api-gateway", map[string]string{
		"REDIS_URL": redisURL, "COMMAND_SERVICE_URL": cmd.URL, "QUERY_SERVICE_URL": qry.URL,
		"EVENT_CONSUMERS_URL": cons.URL,
		"API_KEYS":            "bank-a=key-a,bank-b=key-b", "RATE_LIMIT_RPS": "1000000", "RATE_LIMIT_BURST": "1000000",
	})
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	clients := []*bankClient{{base: gw.URL, key: "key-a", http: hc}, {base: gw.URL, key: "key-b", http: hc}}
	names := []string{"bank-a", "bank-b"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// An endpoint per client, each on its own misbehaving receiver.
	receivers := make([]*receiver, 2)
	endpoints := make([]string, 2)
	for i, c := range clients {
		receivers[i] = newReceiver(t, names[i], true)
		st, b := c.post(ctx, t, "/v1/webhook-endpoints", "endpoint", map[string]any{"url": receivers[i].server.URL + "/hook",
			"event_types": []string{"payment.*", "refund.*"}, "description": "test receiver"})
		if st != 201 {
			t.Fatalf("register endpoint: %d %s", st, b)
		}
		var ep struct {
			EndpointID string `json:"endpoint_id"`
			Secret     string `json:"secret"`
		}
		if err := json.Unmarshal(b, &ep); err != nil || !strings.HasPrefix(ep.Secret, "whsec_") {
			t.Fatalf("endpoint answer %s: %v", b, err)
		}
		endpoints[i] = ep.EndpointID
		receivers[i].setSecrets(ep.Secret)
		// The secret is shown once: reads do not carry it.
		st, b, _ = c.do(ctx, http.MethodGet, "/v1/webhook-endpoints/"+ep.EndpointID, "", nil)
		if st != 200 || strings.Contains(string(b), ep.Secret) {
			t.Fatalf("read endpoint: %d %s", st, b)
		}
	}
	// A second endpoint of the first client, dead: it hangs on every request until the sender's timeout.
	// It must delay nobody's deliveries, its own client's other endpoint included, and end up disabled.
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server notices the client hanging up only once the body is read
		<-r.Context().Done()
	}))
	t.Cleanup(dead.Close)
	st, b := clients[0].post(ctx, t, "/v1/webhook-endpoints", "dead-endpoint", map[string]any{"url": dead.URL})
	if st != 201 {
		t.Fatalf("register the dead endpoint: %d %s", st, b)
	}
	var deadEndpoint struct {
		EndpointID string `json:"endpoint_id"`
	}
	_ = json.Unmarshal(b, &deadEndpoint)

	// Another client's endpoint does not exist, for reads and writes alike.
	if st, _, _ := clients[1].do(ctx, http.MethodGet, "/v1/webhook-endpoints/"+endpoints[0], "", nil); st != 404 {
		t.Errorf("another client's endpoint: %d, want 404", st)
	}
	if st, _ := clients[1].post(ctx, t, "/v1/webhook-endpoints/"+endpoints[0]+"/disable", "steal", nil); st != 404 {
		t.Errorf("disable another client's endpoint: %d, want 404", st)
	}

	accounts, _ := openBankAccounts(ctx, t, clients, 4)

	// Kill the consumers a few times while the payments run.
	chaosCtx, stopChaos := context.WithCancel(ctx)
	var chaosWG sync.WaitGroup
	var kills atomic.Int32
	chaosWG.Go(func() {
		for kills.Load() < 3 {
			select {
			case <-chaosCtx.Done():
				return
			case <-time.After(time.Duration(800+rand.IntN(700)) * time.Millisecond):
			}
			cons.Kill()
			time.Sleep(100 * time.Millisecond)
			cons.Start()
			kills.Add(1)
		}
	})
	accepted, nRefunds := payRandomly(ctx, t, clients, accounts, payments, 8)
	stopChaos()
	chaosWG.Wait()
	if !cons.Running() {
		cons.Start()
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d payments and %d refunds accepted; the consumers killed %d times", len(accepted), nRefunds, kills.Load())

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	waitAllTerminal(t, ctx, pool)
	want := expectedWebhooks(t, ctx, pool, names)
	waitDelivered(t, ctx, pool, deadEndpoint.EndpointID, want)

	total := 0
	for i, r := range receivers {
		r.mu.Lock()
		got := map[string]bool{}
		for id := range r.attempts {
			got[id] = true
		}
		for _, w := range want[names[i]] {
			if !got[w.eventID] {
				t.Errorf("%s: %s %s of %s never delivered", names[i], w.typ, w.eventID, w.resource)
			}
			delete(got, w.eventID)
		}
		for id := range got {
			t.Errorf("%s: got %s %s of %s, which is not its client's", names[i], r.types[id], id, r.resource[id])
		}
		// Per resource, the first deliveries came in log order.
		var logOrder = map[string][]string{}
		for _, w := range want[names[i]] {
			logOrder[w.resource] = append(logOrder[w.resource], w.eventID)
		}
		var seen = map[string][]string{}
		for _, id := range r.first {
			seen[r.resource[id]] = append(seen[r.resource[id]], id)
		}
		for res, order := range logOrder {
			if fmt.Sprint(seen[res]) != fmt.Sprint(order) {
				t.Errorf("%s: resource %s first delivered in order %v, log order %v", names[i], res, seen[res], order)
			}
		}
		if n := r.badSig.Load(); n > 0 {
			t.Errorf("%s: %d deliveries with a bad signature", names[i], n)
		}
		if n := r.mismatch.Load(); n > 0 {
			t.Errorf("%s: %d deliveries whose %s is not the body's id", names[i], n, webhook.HeaderEventID)
		}
		retried := 0
		for _, n := range r.attempts {
			if n > 1 {
				retried++
			}
		}
		total += len(r.first)
		t.Logf("%s: %d events delivered, %d of them more than once", names[i], len(r.first), retried)
		r.mu.Unlock()
	}
	if total == 0 {
		t.Fatal("nothing was delivered")
	}

	// Personal fields arrive opened: a refund's reason as the client wrote it, nothing sealed.
	for i, r := range receivers {
		r.mu.Lock()
		for id, raw := range r.data {
			if strings.Contains(string(raw), pii.Prefix) {
				t.Errorf("%s: %s carries a sealed value: %s", names[i], id, raw)
			}
			if webhook.Resource(r.types[id]) == "refund" && !strings.Contains(string(raw), `"reason":"bank test"`) {
				t.Errorf("%s: %s %s: %s", names[i], r.types[id], id, raw)
			}
		}
		r.mu.Unlock()
	}

	// What a payment.completed carries is the payment as GET /v1/payments/{id} shows it.
	checkDataMatchesAPI(t, ctx, clients[0], receivers[0])

	// The delivery log: attempts with their status codes, readable by the endpoint's client only.
	st, b, _ = clients[0].do(ctx, http.MethodGet, "/v1/webhook-endpoints/"+endpoints[0]+"/deliveries?limit=200", "", nil)
	if st != 200 {
		t.Fatalf("delivery log: %d %s", st, b)
	}
	var page struct {
		Items []struct {
			EventID  string `json:"event_id"`
			Status   string `json:"status"`
			Attempts []struct {
				StatusCode *int `json:"status_code"`
			} `json:"attempts"`
		} `json:"items"`
		NextCursor string `json:"next_cursor"`
	}
	if err := json.Unmarshal(b, &page); err != nil || len(page.Items) == 0 {
		t.Fatalf("delivery log %s: %v", b, err)
	}
	for _, d := range page.Items {
		last := d.Attempts[len(d.Attempts)-1]
		if d.Status != "SUCCEEDED" || last.StatusCode == nil || *last.StatusCode != 204 {
			t.Errorf("delivery of %s: %s, last attempt %v", d.EventID, d.Status, last.StatusCode)
		}
	}
	if st, _, _ := clients[1].do(ctx, http.MethodGet, "/v1/webhook-endpoints/"+endpoints[0]+"/deliveries", "", nil); st != 404 {
		t.Errorf("another client's delivery log: %d, want 404", st)
	}

	// The dead endpoint was disabled, and its owner can read why and what its attempts met.
	st, b, _ = clients[0].do(ctx, http.MethodGet, "/v1/webhook-endpoints/"+deadEndpoint.EndpointID, "", nil)
	var deadNow struct {
		Status         string  `json:"status"`
		DisabledReason *string `json:"disabled_reason"`
	}
	if err := json.Unmarshal(b, &deadNow); err != nil || st != 200 || deadNow.Status != "DISABLED" || deadNow.DisabledReason == nil ||
		!strings.Contains(*deadNow.DisabledReason, "timed out") {
		t.Errorf("dead endpoint: %d %s", st, b)
	}
	// Its delivery log pages back to the attempts it made, each timed out with no status.
	timedOut, cursor := 0, ""
	for range 50 {
		st, b, _ = clients[0].do(ctx, http.MethodGet, "/v1/webhook-endpoints/"+deadEndpoint.EndpointID+"/deliveries?limit=200"+cursor, "", nil)
		var page struct {
			Items []struct {
				Attempts []struct {
					StatusCode *int    `json:"status_code"`
					Error      *string `json:"error"`
				} `json:"attempts"`
			} `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal(b, &page); st != 200 || err != nil {
			t.Fatalf("dead endpoint's delivery log: %d %s", st, b)
		}
		for _, d := range page.Items {
			for _, a := range d.Attempts {
				if a.StatusCode != nil || a.Error == nil || *a.Error != "timed out" {
					t.Errorf("dead endpoint's attempt: status %v, error %v", a.StatusCode, a.Error)
				}
				timedOut++
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = "&cursor=" + page.NextCursor
	}
	if timedOut == 0 {
		t.Error("the dead endpoint's delivery log shows no attempt")
	}

	rotateAndRedeliver(t, ctx, clients[0], receivers[0], endpoints[0], page.Items[0].EventID)
}

// want is one delivery the log calls for.
type want struct{ eventID, typ, resource string }

// expectedWebhooks reads from the log, per client, the state changes of the payments and refunds its
// accounts are a side of, in log order.
func expectedWebhooks(t *testing.T, ctx context.Context, pool *pgxpool.Pool, clients []string) map[string][]want {
	t.Helper()
	rows, err := pool.Query(ctx, `
		with owners as (select payload->>'vpa' as vpa, payload->>'owner_client_id' as client
		                from events where event_type = 'AccountOpened'),
		     pay as (select aggregate_id as id, payload->>'payer_vpa' as payer, payload->>'payee_vpa' as payee
		             from events where event_type = 'PaymentInitiated'),
		     changes as (
		         select e.event_id, e.event_type, e.aggregate_id as resource, e.tx_id, e.global_position, p.payer, p.payee
		         from events e join pay p on p.id = e.aggregate_id
		         where e.event_type in ('PaymentInitiated', 'PaymentCompleted', 'PaymentFailed')
		         union all
		         select e.event_id, e.event_type, e.aggregate_id, e.tx_id, e.global_position,
		                e.payload->>'payer_vpa', e.payload->>'payee_vpa'
		         from events e where e.event_type in ('RefundInitiated', 'RefundCompleted', 'RefundFailed'))
		select distinct c.event_id::text, c.event_type, c.resource, o.client, c.tx_id, c.global_position
		from changes c join owners o on o.vpa in (c.payer, c.payee)
		order by c.tx_id, c.global_position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	types := map[string]string{"PaymentInitiated": webhook.PaymentCreated, "PaymentCompleted": webhook.PaymentCompleted,
		"PaymentFailed": webhook.PaymentFailed, "RefundInitiated": webhook.RefundCreated, "RefundCompleted": webhook.RefundCompleted,
		"RefundFailed": webhook.RefundFailed}
	out := map[string][]want{}
	for rows.Next() {
		var w want
		var client, eventType string
		var tx any
		var pos int64
		if err := rows.Scan(&w.eventID, &eventType, &w.resource, &client, &tx, &pos); err != nil {
			t.Fatal(err)
		}
		w.typ = types[eventType]
		out[client] = append(out[client], w)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if len(out[c]) == 0 {
			t.Fatalf("the log has no state change for %s", c)
		}
	}
	return out
}

// waitDelivered waits until every delivery is done (none pending) and each receiver has seen what it
// should, or the deadline passes (the assertions then say what is missing).
func waitDelivered(t *testing.T, ctx context.Context, pool *pgxpool.Pool, dead string, want map[string][]want) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var pending, queued int
		if err := pool.QueryRow(ctx, `select (select count(*) from webhook_pending where endpoint_id <> $1),
			(select count(*) from webhook_deliveries where endpoint_id <> $1)`, dead).Scan(&pending, &queued); err != nil {
			t.Fatal(err)
		}
		wanted := 0
		for _, ws := range want {
			wanted += len(ws)
		}
		if pending == 0 && queued >= wanted {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("deliveries still pending at the deadline")
}

// checkDataMatchesAPI compares what completed-payment webhooks carried with the payment the API shows.
func checkDataMatchesAPI(t *testing.T, ctx context.Context, c *bankClient, r *receiver) {
	t.Helper()
	r.mu.Lock()
	var checks []json.RawMessage
	for id, typ := range r.types {
		if typ == webhook.PaymentCompleted && len(checks) < 10 {
			checks = append(checks, r.data[id])
		}
	}
	r.mu.Unlock()
	fields := []string{"payment_id", "upi_txn_id", "payer_vpa", "payee_vpa", "amount_paise", "currency", "note", "status",
		"failure_code", "npci_code", "rrn", "created_at"}
	for _, raw := range checks {
		var got map[string]any
		_ = json.Unmarshal(raw, &got)
		st, b, _ := c.do(ctx, http.MethodGet, "/v1/payments/"+got["payment_id"].(string), "", nil)
		if st != 200 {
			t.Errorf("GET payment: %d %s", st, b)
			continue
		}
		var api map[string]any
		_ = json.Unmarshal(b, &api)
		for _, f := range fields {
			if fmt.Sprint(got[f]) != fmt.Sprint(api[f]) {
				t.Errorf("payment %s: webhook %s = %v, API %v", got["payment_id"], f, got[f], api[f])
			}
		}
	}
}

// rotateAndRedeliver rotates the endpoint's secret with an overlap and asks for a redelivery: the
// redelivery is signed with both secrets, so a receiver holding either verifies it.
func rotateAndRedeliver(t *testing.T, ctx context.Context, c *bankClient, r *receiver, endpoint, eventID string) {
	t.Helper()
	st, b := c.post(ctx, t, "/v1/webhook-endpoints/"+endpoint+"/rotate-secret", "rotate-1", map[string]any{"overlap_seconds": 3600})
	if st != 200 {
		t.Fatalf("rotate: %d %s", st, b)
	}
	var ep struct {
		Secret string `json:"secret"`
	}
	_ = json.Unmarshal(b, &ep)
	// A repeat of the same rotation answers the same secret.
	if st, b2 := c.post(ctx, t, "/v1/webhook-endpoints/"+endpoint+"/rotate-secret", "rotate-1", map[string]any{"overlap_seconds": 3600}); st != 200 || string(b2) != string(b) {
		t.Errorf("rotation repeated: %d %s", st, b2)
	}
	r.mu.Lock()
	old := r.secrets[0]
	before := r.attempts[eventID]
	r.chaos = false
	r.mu.Unlock()
	for _, secret := range []string{ep.Secret, old} {
		r.setSecrets(secret)
		st, b := c.post(ctx, t, "/v1/webhook-endpoints/"+endpoint+"/redeliveries", "redeliver-"+secret[:12], map[string]any{"event_id": eventID})
		if st != 202 || !strings.Contains(string(b), `"queued":1`) {
			t.Fatalf("redeliver: %d %s", st, b)
		}
		before++
		deadline := time.Now().Add(30 * time.Second)
		for {
			r.mu.Lock()
			n := r.attempts[eventID]
			r.mu.Unlock()
			if n >= before {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redelivery of %s never verified with the %s secret", eventID, map[bool]string{true: "new", false: "old"}[secret == ep.Secret])
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if n := r.badSig.Load(); n > 0 {
		t.Errorf("%d bad signatures after the rotation", n)
	}
}
