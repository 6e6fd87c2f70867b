package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/testenv"
)

// TestE2EFullStackReads runs every real service (command service, event consumers, query service) on one
// database behind the gateway: a payment made through the gateway completes, and the reads relay the
// query service's bodies and freshness headers.
func TestE2EFullStackReads(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs every service")
	}
	_, dbURL := testenv.PostgresPool(t)
	cmd := testenv.StartService(t, "command-service", map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "warn",
		"LIMIT_DAILY_PAISE": "0", "LIMIT_DAILY_P2P_COUNT": "0", "LIMIT_NEW_ACCOUNT_PAISE": "0"})
	testenv.StartService(t, "event-consumers", map[string]string{"DATABASE_URL": dbURL, "COMMAND_SERVICE_URL": cmd.URL})
	qry := testenv.StartService(t, "query-service", map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "warn"})
	g := newGateway(t, options{commandURL: cmd.URL, queryURL: qry.URL})

	post := func(key, path, idem, body string, status int) map[string]any {
		t.Helper()
		res := g.do(req{method: "POST", path: path, key: key, idem: idem, body: body})
		expect(t, res, status, "")
		return jsonBody(t, res)
	}
	get := func(key, path string) *result {
		t.Helper()
		return g.do(req{method: "GET", path: path, key: key})
	}
	post(alphaKey, "/v1/accounts", "a", `{"vpa":"alice@okbank","holder_name":"Alice"}`, http.StatusCreated)
	post(betaKey, "/v1/accounts", "b", `{"vpa":"bob@okbank","holder_name":"Bob"}`, http.StatusCreated)
	post(alphaKey, "/v1/accounts/alice@okbank/deposits", "d", `{"amount_paise":100000,"reference":"neft-1"}`, http.StatusCreated)
	pay := post(alphaKey, "/v1/payments", "p", `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":12500}`, http.StatusAccepted)
	id, _ := pay["payment_id"].(string)
	written, _ := pay["position"].(string)

	// Long-poll until the payment is terminal; the gateway's deadline covers the wait.
	var payment contract.Payment
	deadline := time.Now().Add(30 * time.Second)
	for payment.Status != contract.PaymentCompleted {
		if time.Now().After(deadline) {
			t.Fatalf("payment still %q after 30s", payment.Status)
		}
		res := get(alphaKey, "/v1/payments/"+id+"?wait=5s&min_position="+written)
		if res.status == http.StatusNotFound && res.header.Get(contract.HeaderProjectionStale) == "true" {
			continue // the projections have not reached the payment yet
		}
		expect(t, res, http.StatusOK, "")
		if res.header.Get(contract.HeaderProjectionPosition) == "" {
			t.Fatalf("no %s relayed", contract.HeaderProjectionPosition)
		}
		if err := json.Unmarshal(res.body, &payment); err != nil {
			t.Fatal(err)
		}
		if payment.Status == contract.PaymentFailed {
			t.Fatalf("payment failed: %s", res.body)
		}
	}
	pos := payment.Position

	// Read-your-writes through the gateway, each owner seeing its own account.
	for _, tc := range []struct {
		key, vpa string
		balance  float64
	}{{alphaKey, "alice@okbank", 87500}, {betaKey, "bob@okbank", 12500}} {
		res := get(tc.key, "/v1/accounts/"+tc.vpa+"/balance?min_position="+pos)
		expect(t, res, http.StatusOK, "")
		var b contract.Balance
		if err := json.Unmarshal(res.body, &b); err != nil || float64(b.BalancePaise) != tc.balance {
			t.Fatalf("%s balance = %s, want %v", tc.vpa, res.body, tc.balance)
		}
		if res.header.Get(contract.HeaderProjectionStale) != "" {
			t.Fatalf("%s balance stale after the payment completed", tc.vpa)
		}
	}
	expect(t, get(alphaKey, "/v1/accounts/alice%40okbank"), http.StatusOK, "")
	// Reads stay private: beta cannot see alice's account, but sees the payment it received.
	expect(t, get(betaKey, "/v1/accounts/alice@okbank/balance"), http.StatusNotFound, problem.CodeAccountNotFound)
	expect(t, get(betaKey, "/v1/payments/"+id), http.StatusOK, "")
	expect(t, get(alphaKey, "/v1/payments/"+paymentID), http.StatusNotFound, problem.CodePaymentNotFound)

	// Pages and the audit trail are relayed as the query service wrote them.
	res := get(alphaKey, "/v1/accounts/alice@okbank/transactions?limit=1")
	expect(t, res, http.StatusOK, "")
	var page contract.TransactionPage
	if err := json.Unmarshal(res.body, &page); err != nil || len(page.Items) != 1 || page.NextCursor == "" {
		t.Fatalf("first page = %s", res.body)
	}
	res = get(alphaKey, "/v1/accounts/alice@okbank/transactions?limit=1&cursor="+page.NextCursor)
	expect(t, res, http.StatusOK, "")
	res = get(alphaKey, "/v1/payments/"+id+"/events")
	expect(t, res, http.StatusOK, "")
	var trail contract.PaymentEventPage
	if err := json.Unmarshal(res.body, &trail); err != nil || len(trail.Items) < 2 || trail.Items[0].EventType != "PaymentInitiated" {
		t.Fatalf("audit trail = %s", res.body)
	}
}
