package main_test

// Settlement cycles and reconciliation files end to end: a workload through the real services that
// crosses cycle boundaries (two-second cycles), then the operators' reads: every cycle's nets sum to zero,
// every bank's file totals to its position, each movement is in exactly one cycle, a rebuild of the
// projection gives the same bytes, and an altered file has its differences named.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"upi/testenv"
)

// settlementEnv are the consumers' settlement settings of these tests: short cycles.
var settlementEnv = map[string]string{"SETTLEMENT_CYCLE_LENGTH": "2s", "SETTLEMENT_CLOSE_GRACE": "500ms"}

type opsClient struct {
	base, key string
	http      *http.Client
}

func (o *opsClient) get(ctx context.Context, t *testing.T, path, accept string) (int, []byte, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, o.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+o.key)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := o.http.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header.Get("Content-Type")
}

func (o *opsClient) post(ctx context.Context, t *testing.T, path, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, o.base+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+o.key)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Idempotency-Key", fmt.Sprintf("check-%d", time.Now().UnixNano()))
	resp, err := o.http.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type cycleView struct {
	CycleID   string `json:"cycle_id"`
	Status    string `json:"status"`
	Movements int64  `json:"movements"`
	Positions []struct {
		Bank          string `json:"bank"`
		PaidOutPaise  int64  `json:"paid_out_paise"`
		ReceivedPaise int64  `json:"received_paise"`
		NetPaise      int64  `json:"net_paise"`
		Debits        int64  `json:"debits"`
		Credits       int64  `json:"credits"`
	} `json:"positions"`
	NetSumPaise int64 `json:"net_sum_paise"`
}

type fileView struct {
	Lines []struct {
		UPITxnID    string `json:"upi_txn_id"`
		Type        string `json:"type"`
		Side        string `json:"side"`
		AmountPaise int64  `json:"amount_paise"`
	} `json:"lines"`
	Totals struct {
		Lines         int64 `json:"lines"`
		PaidOutPaise  int64 `json:"paid_out_paise"`
		ReceivedPaise int64 `json:"received_paise"`
		NetPaise      int64 `json:"net_paise"`
	} `json:"totals"`
}

func TestSettlementCyclesAndReconciliationFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole system; skipped with -short")
	}
	t.Parallel()
	dbURL := testenv.Postgres(t)
	cmd := testenv.StartService(t, "command-service", map[string]string{"DATABASE_URL": dbURL})
	qry := testenv.StartService(t, "query-service", map[string]string{"DATABASE_URL": dbURL})
	consEnv := map[string]string{"DATABASE_URL": dbURL, "COMMAND_SERVICE_URL": cmd.URL}
	for k, v := range settlementEnv {
		consEnv[k] = v
	}
	cons := testenv.StartService(t, "event-consumers", consEnv)
	gw := testenv.StartService(t, "api-gateway", map[string]string{
		"REDIS_URL": testenv.Redis(t), "COMMAND_SERVICE_URL": cmd.URL, "QUERY_SERVICE_URL": qry.URL,
		"EVENT_CONSUMERS_URL": cons.URL, "API_KEYS": "psp-a=key-a,psp-b=key-b", "OPERATOR_KEYS": "auditor=audit-key",
	})
	hc := &http.Client{Timeout: 15 * time.Second}
	a, b := &bankClient{base: gw.URL, key: "key-a", http: hc}, &bankClient{base: gw.URL, key: "key-b", http: hc}
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
	mustPost(a, "/v1/accounts", "o2", map[string]any{"vpa": "asha@okbank", "holder_name": "Asha"}, 201)
	mustPost(b, "/v1/accounts", "o3", map[string]any{"vpa": "bob@axis", "holder_name": "Bob"}, 201)
	mustPost(b, "/v1/accounts", "o4", map[string]any{"vpa": "shop@hdfc", "holder_name": "Shop", "type": "ENTITY", "mcc": "5411"}, 201)
	mustPost(a, "/v1/accounts/alice@okbank/deposits", "d1", map[string]any{"amount_paise": 100000, "reference": "top-1"}, 201)

	pay := func(key, payee string, amount int64) string {
		t.Helper()
		var p struct {
			PaymentID string `json:"payment_id"`
			Position  string `json:"position"`
		}
		_ = json.Unmarshal(mustPost(a, "/v1/payments", key, map[string]any{"payer_vpa": "alice@okbank", "payee_vpa": payee, "amount_paise": amount}, 202), &p)
		st, body := awaitPayment(ctx, a, p.PaymentID, p.Position)
		if st != 200 || !strings.Contains(string(body), `"status":"COMPLETED"`) && !strings.Contains(string(body), `"status":"FAILED"`) {
			t.Fatalf("payment %s: %d %s", p.PaymentID, st, body)
		}
		return p.PaymentID
	}
	// Movements spread over at least three cycles of two seconds.
	toBob := pay("p1", "bob@axis", 1000)
	intra := pay("p2", "asha@okbank", 700)
	time.Sleep(2100 * time.Millisecond)
	toShop := pay("p3", "shop@hdfc", 5000)
	pay("p4", "bob@axis", 10_000_000) // fails for want of funds: no money moves, no line
	mustPost(b, "/v1/payments/"+toShop+"/refunds", "r1", map[string]any{"amount_paise": 1500, "reason": "returned"}, 202)
	time.Sleep(2100 * time.Millisecond)
	mustPost(a, "/v1/accounts/alice@okbank/withdrawals", "w1", map[string]any{"amount_paise": 2500, "reference": "cash-1"}, 202)
	mustPost(b, "/v1/accounts/bob@axis/withdrawals", "w2", map[string]any{"amount_paise": 400, "reference": "cash-2"}, 202)
	const movements = 7 // deposit, three payments, the refund, two withdrawals

	// Clients may not read the back office.
	if st, body, _ := (&opsClient{base: gw.URL, key: "key-a", http: hc}).get(ctx, t, "/v1/ops/settlement/cycles", ""); st != 403 {
		t.Errorf("a client reads the settlement cycles: %d %s", st, body)
	}

	// Every cycle closes once the log has passed its end.
	var list struct {
		Items []cycleView `json:"items"`
	}
	for {
		st, body, _ := ops.get(ctx, t, "/v1/ops/settlement/cycles", "")
		if st != 200 || json.Unmarshal(body, &list) != nil {
			t.Fatalf("cycles: %d %s", st, body)
		}
		var n int64
		closed := true
		for _, c := range list.Items {
			n += c.Movements
			closed = closed && c.Status == "CLOSED"
		}
		if n == movements && closed {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the cycles never all closed with %d movements: %s", movements, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(list.Items) < 3 {
		t.Fatalf("the workload crossed two boundaries but is in %d cycles", len(list.Items))
	}
	if st, body, _ := ops.get(ctx, t, "/v1/ops/settlement/cycles/nosuchcycle", ""); st != 404 || !strings.Contains(string(body), "CYCLE_NOT_FOUND") {
		t.Errorf("an unknown cycle: %d %s", st, body)
	}

	// Each cycle: the nets sum to zero, each bank's file totals to its position; each movement is in one
	// cycle, on one DEBIT and one CREDIT line.
	files := map[string][]byte{}
	debits := map[string]int{}
	for _, c := range list.Items {
		st, body, _ := ops.get(ctx, t, "/v1/ops/settlement/cycles/"+c.CycleID, "")
		var d cycleView
		if st != 200 || json.Unmarshal(body, &d) != nil {
			t.Fatalf("cycle %s: %d %s", c.CycleID, st, body)
		}
		var sum int64
		for _, p := range d.Positions {
			sum += p.NetPaise
			path := "/v1/ops/settlement/cycles/" + c.CycleID + "/banks/" + p.Bank + "/file"
			st, raw, ct := ops.get(ctx, t, path, "")
			var f fileView
			if st != 200 || !strings.HasPrefix(ct, "application/json") || json.Unmarshal(raw, &f) != nil {
				t.Fatalf("file %s: %d %s", path, st, raw)
			}
			if f.Totals.PaidOutPaise != p.PaidOutPaise || f.Totals.ReceivedPaise != p.ReceivedPaise || f.Totals.NetPaise != p.NetPaise ||
				f.Totals.Lines != p.Debits+p.Credits || int64(len(f.Lines)) != f.Totals.Lines {
				t.Errorf("file %s totals %+v, position %+v", path, f.Totals, p)
			}
			for _, l := range f.Lines {
				if l.Side == "DEBIT" {
					debits[l.UPITxnID]++
				}
			}
			files[path+" json"] = raw
			st, csv, ct := ops.get(ctx, t, path, "text/csv")
			if st != 200 || !strings.HasPrefix(ct, "text/csv") || bytes.Count(csv, []byte("\r\n")) != len(f.Lines)+1 {
				t.Fatalf("CSV file %s: %d %q %s", path, st, ct, csv)
			}
			files[path+" csv"] = csv
		}
		if sum != 0 || d.NetSumPaise != 0 {
			t.Errorf("cycle %s: nets sum to %d (%d reported)", c.CycleID, sum, d.NetSumPaise)
		}
	}
	if len(debits) != movements {
		t.Errorf("%d movements have a DEBIT line, want %d: %v", len(debits), movements, debits)
	}
	for txn, n := range debits {
		if n != 1 {
			t.Errorf("movement %s has %d DEBIT lines", txn, n)
		}
	}
	for _, id := range []string{toBob, intra, toShop} {
		if txn := "UPI" + strings.ReplaceAll(id, "-", ""); debits[txn] != 1 {
			t.Errorf("payment %s (%s) is not in exactly one cycle", id, txn)
		}
	}

	// A bank checks its file: unchanged it matches; altered, every difference is named.
	var path, csvFile string
	for k, v := range files {
		if strings.HasSuffix(k, " csv") && bytes.Count(v, []byte("\r\n")) >= 3 {
			path, csvFile = strings.TrimSuffix(strings.TrimSuffix(k, " csv"), "/file"), string(v)
			break
		}
	}
	if path == "" {
		t.Fatal("no file with two lines to alter")
	}
	st, body := ops.post(ctx, t, path+"/reconciliation", "text/csv", []byte(csvFile))
	if st != 200 || !strings.Contains(string(body), `"ok":true`) {
		t.Fatalf("the bank's own file: %d %s", st, body)
	}
	rows := strings.Split(strings.TrimSuffix(csvFile, "\r\n"), "\r\n")
	first := strings.Split(rows[1], ",")
	altered := append([]string{}, first...)
	altered[6] = altered[6] + "1"
	rows[1] = strings.Join(altered, ",")
	dropped := strings.Split(rows[2], ",")
	rows = append(rows[:2], rows[3:]...)
	st, body = ops.post(ctx, t, path+"/reconciliation", "text/csv", []byte(strings.Join(rows, "\r\n")+"\r\n"))
	var report struct {
		OK          bool `json:"ok"`
		Differences []struct {
			Kind     string `json:"kind"`
			UPITxnID string `json:"upi_txn_id"`
			Side     string `json:"side"`
			Field    string `json:"field"`
			File     string `json:"file"`
			Ledger   string `json:"ledger"`
		} `json:"differences"`
	}
	if st != 200 || json.Unmarshal(body, &report) != nil || report.OK || len(report.Differences) != 2 {
		t.Fatalf("the altered file: %d %s", st, body)
	}
	if d := report.Differences[0]; d.Kind != "MISMATCH" || d.UPITxnID != first[0] || d.Side != first[3] || d.Field != "amount_paise" ||
		d.File != altered[6] || d.Ledger != first[6] {
		t.Errorf("the altered amount is reported as %+v", d)
	}
	if d := report.Differences[1]; d.Kind != "MISSING" || d.UPITxnID != dropped[0] || d.Side != dropped[3] {
		t.Errorf("the dropped line is reported as %+v", d)
	}

	// A rebuild of the projection from the log gives the same files, byte for byte. (A test's database is
	// a copy of a migrated template, which database grants do not follow: a rebuild makes a schema.)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `do $$ begin execute format('grant create on database %I to upi_consumers',
		current_database()); end $$`); err != nil {
		t.Fatal(err)
	}
	rebuild := exec.CommandContext(ctx, testenv.Binary(t, "event-consumers"), "rebuild", "settlement")
	rebuild.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "LOG_LEVEL=warn", "UPI_ENV=development",
		"SETTLEMENT_CYCLE_LENGTH="+settlementEnv["SETTLEMENT_CYCLE_LENGTH"], "SETTLEMENT_CLOSE_GRACE="+settlementEnv["SETTLEMENT_CLOSE_GRACE"])
	if out, err := rebuild.CombinedOutput(); err != nil {
		t.Fatalf("rebuild settlement: %v\n%s", err, out)
	}
	// The last cycle, closed while the log was idle, is open again in the rebuilt tables until the closer's
	// next round (a second): its figures are the same.
	for {
		st, body, _ := ops.get(ctx, t, "/v1/ops/settlement/cycles", "")
		if st == 200 && !strings.Contains(string(body), `"OPEN"`) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the rebuilt cycles never closed: %d %s", st, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for k, want := range files {
		path, format, _ := strings.Cut(k, " ")
		accept := ""
		if format == "csv" {
			accept = "text/csv"
		}
		if st, got, _ := ops.get(ctx, t, path, accept); !bytes.Equal(got, want) {
			t.Errorf("%s after a rebuild: %d\n%s\nbefore:\n%s", k, st, got, want)
		}
	}
}
