package main_test

// Withdrawals end to end, as a client and an operator see them: through the real gateway, command
// service, consumers and query service, then the ledger check on what they wrote.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"upi/testenv"
)

func TestWithdrawalsThroughTheServicesAndTheLedgerCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole system; skipped with -short")
	}
	t.Parallel()
	dbURL := testenv.Postgres(t)
	cmd := testenv.StartService(t, "command-service", map[string]string{"DATABASE_URL": dbURL})
	qry := testenv.StartService(t, "query-service", map[string]string{"DATABASE_URL": dbURL})
	testenv.StartService(t, "event-consumers", map[string]string{"DATABASE_URL": dbURL, "COMMAND_SERVICE_URL": cmd.URL})
	gw := testenv.StartService(t, "api-gateway", map[string]string{
		"REDIS_URL": testenv.Redis(t), "COMMAND_SERVICE_URL": cmd.URL, "QUERY_SERVICE_URL": qry.URL,
		"API_KEYS": "psp-a=key-a,psp-b=key-b",
	})
	hc := &http.Client{Timeout: 15 * time.Second}
	a, b := &bankClient{base: gw.URL, key: "key-a", http: hc}, &bankClient{base: gw.URL, key: "key-b", http: hc}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if st, body := a.post(ctx, t, "/v1/accounts", "open", map[string]any{"vpa": "alice@okbank", "holder_name": "Alice"}); st != 201 {
		t.Fatalf("open: %d %s", st, body)
	}
	if st, body := a.post(ctx, t, "/v1/accounts/alice@okbank/deposits", "top-up", map[string]any{"amount_paise": 10000, "reference": "top-1"}); st != 201 {
		t.Fatalf("deposit: %d %s", st, body)
	}
	type withdrawal struct {
		WithdrawalID string  `json:"withdrawal_id"`
		Status       string  `json:"status"`
		FailureCode  *string `json:"failure_code"`
		NPCICode     *string `json:"npci_code"`
		RRN          string  `json:"rrn"`
		Position     string  `json:"position"`
	}
	withdraw := func(key string, amount int64) withdrawal {
		t.Helper()
		st, body := a.post(ctx, t, "/v1/accounts/alice@okbank/withdrawals", key, map[string]any{"amount_paise": amount, "reference": key})
		var w withdrawal
		if st != 202 || json.Unmarshal(body, &w) != nil || w.WithdrawalID == "" {
			t.Fatalf("withdraw %d: %d %s", amount, st, body)
		}
		return w
	}
	paid, refused := withdraw("cash-1", 4000), withdraw("cash-2", 9000)

	// The owner reads each as the query service serves it, waiting for it to be projected.
	for _, want := range []struct {
		w            withdrawal
		status, npci string
	}{{paid, "COMPLETED", ""}, {refused, "FAILED", "Z9"}} {
		st, body, _ := a.do(ctx, http.MethodGet, "/v1/withdrawals/"+want.w.WithdrawalID+"?wait=10s", "", nil)
		var got withdrawal
		if st != 200 || json.Unmarshal(body, &got) != nil {
			t.Fatalf("GET withdrawal %s: %d %s", want.w.WithdrawalID, st, body)
		}
		npci := ""
		if got.NPCICode != nil {
			npci = *got.NPCICode
		}
		if got.Status != want.status || npci != want.npci || (want.status == "COMPLETED") != rrnForm.MatchString(got.RRN) {
			t.Errorf("withdrawal %s reads %s", want.w.WithdrawalID, body)
		}
		if st, body, _ := b.do(ctx, http.MethodGet, "/v1/withdrawals/"+want.w.WithdrawalID, "", nil); st != 404 ||
			!strings.Contains(string(body), "WITHDRAWAL_NOT_FOUND") {
			t.Errorf("another client reads withdrawal %s: %d %s", want.w.WithdrawalID, st, body)
		}
	}

	// The account's movements show the withdrawal, with its id and RRN; the rejection moved nothing.
	st, body, _ := a.do(ctx, http.MethodGet, "/v1/accounts/alice@okbank/transactions?min_position="+url.QueryEscape(refused.Position), "", nil)
	var page struct {
		Items []struct {
			Kind              string `json:"kind"`
			AmountPaise       int64  `json:"amount_paise"`
			BalanceAfterPaise int64  `json:"balance_after_paise"`
			WithdrawalID      string `json:"withdrawal_id"`
			RRN               string `json:"rrn"`
		} `json:"items"`
	}
	if st != 200 || json.Unmarshal(body, &page) != nil || len(page.Items) != 2 {
		t.Fatalf("transactions: %d %s", st, body)
	}
	if m := page.Items[0]; m.Kind != "WITHDRAWAL" || m.AmountPaise != 4000 || m.BalanceAfterPaise != 6000 ||
		m.WithdrawalID != paid.WithdrawalID || !rrnForm.MatchString(m.RRN) {
		t.Errorf("newest movement %+v, want the withdrawal", m)
	}

	// The operators' read on the query service: okbank paid out 10000 and got 4000 back.
	resp, err := hc.Get(qry.URL + "/ops/settlement-accounts?min_position=" + url.QueryEscape(refused.Position))
	if err != nil {
		t.Fatal(err)
	}
	var banks struct {
		Items []struct {
			Bank         string `json:"bank"`
			BalancePaise int64  `json:"balance_paise"`
			Deposits     int64  `json:"deposits"`
			Withdrawals  int64  `json:"withdrawals"`
		} `json:"items"`
	}
	err = json.NewDecoder(resp.Body).Decode(&banks)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(banks.Items) != 1 || banks.Items[0].Bank != "okbank" ||
		banks.Items[0].BalancePaise != -6000 || banks.Items[0].Deposits != 1 || banks.Items[0].Withdrawals != 1 {
		t.Errorf("settlement accounts: %d %+v (%v)", resp.StatusCode, banks, err)
	}

	// And the books hold, the withdrawals' read model included.
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	verifyLedger(t, pool, dbURL)
	out, _, _ := runConsumers(t, dbURL, "verify")
	for _, want := range []string{"ok   projection withdrawals: 2 rows, all equal", "ok   projection settlement_accounts: 1 row, all equal",
		"withdrawals 2 terminal (1 completed, 1 failed)", "accounts 6000, settlement -6000, in transit 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify does not say %q:\n%s", want, out)
		}
	}
}
