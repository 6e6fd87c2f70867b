package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/testenv"
)

// upiStack is every real service on one database behind the gateway, the command service with the given
// LIMIT_* settings (the others at their defaults).
type upiStack struct {
	*gateway
	t *testing.T
}

func newUPIStack(t *testing.T, limits map[string]string) *upiStack {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs every service")
	}
	_, dbURL := testenv.PostgresPool(t)
	env := map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "warn"}
	for k, v := range limits {
		env[k] = v
	}
	cmd := testenv.StartService(t, "command-service", env)
	testenv.StartService(t, "event-consumers", map[string]string{"DATABASE_URL": dbURL, "COMMAND_SERVICE_URL": cmd.URL, "LOG_LEVEL": "warn"})
	qry := testenv.StartService(t, "query-service", map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "warn"})
	return &upiStack{gateway: newGateway(t, options{commandURL: cmd.URL, queryURL: qry.URL}), t: t}
}

func (s *upiStack) open(key, vpa, name, extra string) {
	s.t.Helper()
	expect(s.t, s.post(key, "/v1/accounts", "open-"+vpa, `{"vpa":"`+vpa+`","holder_name":"`+name+`"`+extra+`}`), http.StatusCreated, "")
}

func (s *upiStack) deposit(key, vpa string, paise int64) {
	s.t.Helper()
	expect(s.t, s.post(key, "/v1/accounts/"+vpa+"/deposits", "dep-"+vpa, fmt.Sprintf(`{"amount_paise":%d,"reference":"neft"}`, paise)),
		http.StatusCreated, "")
}

func (s *upiStack) post(key, path, idem, body string) *result {
	return s.do(req{method: http.MethodPost, path: path, key: key, idem: idem, body: body})
}

// pay starts a payment and returns its id and upi_txn_id.
func (s *upiStack) pay(key, idem, payer, payee string, paise int64) (string, string) {
	s.t.Helper()
	res := s.post(key, "/v1/payments", idem, fmt.Sprintf(`{"payer_vpa":%q,"payee_vpa":%q,"amount_paise":%d}`, payer, payee, paise))
	if res.status != http.StatusAccepted {
		s.t.Errorf("pay %s: %d %s", idem, res.status, res.body)
		return "", ""
	}
	var p contract.Payment
	if err := json.Unmarshal(res.body, &p); err != nil {
		s.t.Error(err)
	}
	return p.PaymentID, p.UPITxnID
}

// settled long-polls a payment until it is terminal.
func (s *upiStack) settled(key, id string) contract.Payment {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		res := s.do(req{method: http.MethodGet, path: "/v1/payments/" + id + "?wait=5s", key: key})
		if res.status == http.StatusNotFound {
			time.Sleep(20 * time.Millisecond) // the projection has not reached it yet
			continue
		}
		var p contract.Payment
		if res.status != http.StatusOK || json.Unmarshal(res.body, &p) != nil {
			s.t.Errorf("payment %s: %d %s", id, res.status, res.body)
			return p
		}
		if p.Status != contract.PaymentPending {
			return p
		}
	}
	s.t.Errorf("payment %s not settled in 60s", id)
	return contract.Payment{}
}

func (s *upiStack) balance(key, vpa string) int64 {
	s.t.Helper()
	res := s.do(req{method: http.MethodGet, path: "/v1/accounts/" + vpa + "/balance", key: key})
	expect(s.t, res, http.StatusOK, "")
	var b contract.Balance
	_ = json.Unmarshal(res.body, &b)
	return b.BalancePaise
}

var rrnForm = regexp.MustCompile(`^[0-9]{12}$`)

func failedWith(t *testing.T, p contract.Payment, code, npci string) {
	t.Helper()
	if p.Status != contract.PaymentFailed || p.FailureCode == nil || *p.FailureCode != code ||
		p.NPCICode == nil || *p.NPCICode != npci || p.RRN != "" {
		t.Fatalf("payment = %+v, want FAILED %s / %s without an rrn", p, code, npci)
	}
}

func completed(t *testing.T, p contract.Payment) {
	t.Helper()
	if p.Status != contract.PaymentCompleted || p.FailureCode != nil || p.NPCICode != nil || !rrnForm.MatchString(p.RRN) {
		t.Fatalf("payment = %+v, want COMPLETED with a 12-digit rrn", p)
	}
}

// TestE2EUPIDefaultLimits: a PSP's view with the default limits: payee lookup, the daily count of payments
// to persons, the new-account limit, references and the RRN search.
func TestE2EUPIDefaultLimits(t *testing.T) {
	s := newUPIStack(t, nil)
	s.open(alphaKey, "alice@okbank", "Alice", "")
	s.open(betaKey, "bob@okbank", "Bob", `,"type":"PERSON"`)
	s.open(betaKey, "shop@okbank", "Kirana Store", `,"type":"ENTITY","mcc":"5411"`)
	expect(t, s.post(betaKey, "/v1/accounts", "bad-1", `{"vpa":"x1@okbank","holder_name":"X","mcc":"5411"}`), http.StatusBadRequest, problem.CodeValidation)
	expect(t, s.post(betaKey, "/v1/accounts", "bad-2", `{"vpa":"x2@okbank","holder_name":"X","type":"ENTITY"}`), http.StatusBadRequest, problem.CodeValidation)
	expect(t, s.post(betaKey, "/v1/accounts", "bad-3", `{"vpa":"x3@okbank","holder_name":"X","type":"ENTITY","mcc":"54a1"}`), http.StatusBadRequest, problem.CodeValidation)
	expect(t, s.post(betaKey, "/v1/accounts", "bad-4", `{"vpa":"x4@okbank","holder_name":"X","type":"BANK"}`), http.StatusBadRequest, problem.CodeValidation)
	s.deposit(alphaKey, "alice@okbank", 2_000_000)

	// Lookup: exactly the registered name and kind, to any client; never balance or owner.
	for _, tc := range []struct{ key, vpa, want string }{
		{alphaKey, "shop@okbank", `{"vpa":"shop@okbank","name":"Kirana Store","type":"ENTITY","mcc":"5411"}`},
		{alphaKey, "bob@okbank", `{"vpa":"bob@okbank","name":"Bob","type":"PERSON"}`},
		{betaKey, "alice@okbank", `{"vpa":"alice@okbank","name":"Alice","type":"PERSON"}`},
	} {
		var res *result
		for i := 0; i < 100; i++ { // until the projection has the account
			if res = s.do(req{method: http.MethodGet, path: "/v1/vpas/" + tc.vpa, key: tc.key}); res.status != http.StatusNotFound {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		expect(t, res, http.StatusOK, "")
		if strings.TrimSpace(string(res.body)) != tc.want {
			t.Fatalf("lookup %s = %s, want %s", tc.vpa, res.body, tc.want)
		}
	}
	expect(t, s.do(req{method: http.MethodGet, path: "/v1/vpas/nobody@okbank", key: alphaKey}), http.StatusNotFound, problem.CodeVPANotFound)
	expect(t, s.do(req{method: http.MethodGet, path: "/v1/vpas/nobody@okbank"}), http.StatusUnauthorized, problem.CodeUnauthenticated)

	// Ten payments to a person complete; the eleventh fails Z7 and moves no money; entities go on.
	rrns := map[string]bool{}
	var first contract.Payment
	for i := 1; i <= 10; i++ {
		id, upi := s.pay(alphaKey, fmt.Sprintf("p2p-%d", i), "alice@okbank", "bob@okbank", 100)
		p := s.settled(alphaKey, id)
		completed(t, p)
		if p.UPITxnID != upi || p.UPITxnID != "UPI"+strings.ReplaceAll(id, "-", "") {
			t.Fatalf("upi_txn_id %q, answered %q, for payment %s", p.UPITxnID, upi, id)
		}
		if rrns[p.RRN] {
			t.Fatalf("rrn %s given twice", p.RRN)
		}
		rrns[p.RRN] = true
		if i == 1 {
			first = p
		}
	}
	id, _ := s.pay(alphaKey, "p2p-11", "alice@okbank", "bob@okbank", 100)
	failedWith(t, s.settled(alphaKey, id), "COUNT_LIMIT_EXCEEDED", "Z7")
	id, _ = s.pay(alphaKey, "p2m-1", "alice@okbank", "shop@okbank", 100)
	p2m := s.settled(alphaKey, id)
	completed(t, p2m)
	rrns[p2m.RRN] = true
	if b := s.balance(alphaKey, "alice@okbank"); b != 2_000_000-11*100 {
		t.Fatalf("alice's balance = %d, want %d", b, 2_000_000-11*100)
	}

	// A new account passing Rs 5,000 in its first day fails U16, no money moved.
	id, _ = s.pay(alphaKey, "new-1", "alice@okbank", "shop@okbank", 500_000)
	failedWith(t, s.settled(alphaKey, id), "NEW_ACCOUNT_LIMIT_EXCEEDED", "U16")
	if b := s.balance(alphaKey, "alice@okbank"); b != 2_000_000-11*100 {
		t.Fatalf("alice's balance = %d after a declined payment", b)
	}

	// A replayed request shows the same upi_txn_id, and the payment the same rrn.
	replay := s.post(alphaKey, "/v1/payments", "p2p-1", `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":100}`)
	var replayed contract.Payment
	if err := json.Unmarshal(replay.body, &replayed); err != nil || replayed.UPITxnID != first.UPITxnID {
		t.Fatalf("replay = %s, want upi_txn_id %s", replay.body, first.UPITxnID)
	}
	if again := s.settled(alphaKey, first.PaymentID); again.RRN != first.RRN || again.UPITxnID != first.UPITxnID {
		t.Fatalf("payment read again = %+v, first %+v", again, first)
	}

	// The audit trail and the transaction list show the rrn.
	res := s.do(req{method: http.MethodGet, path: "/v1/payments/" + first.PaymentID + "/events", key: alphaKey})
	expect(t, res, http.StatusOK, "")
	if !strings.Contains(string(res.body), `"rrn":"`+first.RRN+`"`) {
		t.Fatalf("audit trail lacks the rrn %s: %s", first.RRN, res.body)
	}
	res = s.do(req{method: http.MethodGet, path: "/v1/accounts/alice@okbank/transactions?limit=200", key: alphaKey})
	expect(t, res, http.StatusOK, "")
	var page contract.TransactionPage
	_ = json.Unmarshal(res.body, &page)
	debits := 0
	for _, tx := range page.Items {
		if tx.Kind == contract.KindDebit {
			debits++
			if !rrns[tx.RRN] {
				t.Fatalf("debit %+v shows rrn %q", tx, tx.RRN)
			}
		}
	}
	if debits != 11 {
		t.Fatalf("%d debits listed, want 11: %s", debits, res.body)
	}

	// The RRN search finds the payment for both owners, and lists nothing to anyone else.
	for _, key := range []string{alphaKey, betaKey} {
		res := s.do(req{method: http.MethodGet, path: "/v1/payments?rrn=" + first.RRN, key: key})
		expect(t, res, http.StatusOK, "")
		var list contract.PaymentList
		if err := json.Unmarshal(res.body, &list); err != nil || len(list.Items) != 1 || list.Items[0].PaymentID != first.PaymentID {
			t.Fatalf("rrn search = %s", res.body)
		}
	}
	s.open(alphaKey, "cafe@okbank", "Cafe", `,"type":"ENTITY","mcc":"5812"`)
	id, _ = s.pay(alphaKey, "own-1", "alice@okbank", "cafe@okbank", 1)
	mine := s.settled(alphaKey, id)
	completed(t, mine)
	for key, want := range map[string]int{alphaKey: 1, betaKey: 0} {
		res = s.do(req{method: http.MethodGet, path: "/v1/payments?rrn=" + mine.RRN, key: key})
		expect(t, res, http.StatusOK, "")
		var list contract.PaymentList
		if err := json.Unmarshal(res.body, &list); err != nil || len(list.Items) != want {
			t.Fatalf("rrn search of alpha's own payment = %s, want %d items", res.body, want)
		}
	}
	expect(t, s.do(req{method: http.MethodGet, path: "/v1/payments?rrn=12345", key: alphaKey}), http.StatusBadRequest, problem.CodeValidation)
}

// TestE2EUPILimitsRaceAndOff: the daily amount limit holds under 50 concurrent payments from one payer
// (exactly the 10 that fit complete), Z8 past Rs 1,00,000, and a limit set to 0 lets payments through;
// every completed payment has its own 12-digit RRN.
func TestE2EUPILimitsRaceAndOff(t *testing.T) {
	s := newUPIStack(t, map[string]string{"LIMIT_NEW_ACCOUNT_PAISE": "0", "LIMIT_DAILY_P2P_COUNT": "0"})
	s.open(alphaKey, "alice@okbank", "Alice", "")
	s.open(betaKey, "bob@okbank", "Bob", "")
	s.deposit(alphaKey, "alice@okbank", 50_000_000)

	// 50 concurrent payments of Rs 10,000; the daily Rs 1,00,000 fits exactly 10.
	const n = 50
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], _ = s.pay(alphaKey, fmt.Sprintf("race-%d", i), "alice@okbank", "bob@okbank", 1_000_000)
		}()
	}
	wg.Wait()
	rrns := map[string]bool{}
	done := 0
	for _, id := range ids {
		p := s.settled(alphaKey, id)
		switch p.Status {
		case contract.PaymentCompleted:
			completed(t, p)
			if rrns[p.RRN] {
				t.Fatalf("rrn %s given twice", p.RRN)
			}
			rrns[p.RRN] = true
			done++
		default:
			failedWith(t, p, "DAILY_LIMIT_EXCEEDED", "Z8")
		}
	}
	if done != 10 {
		t.Fatalf("%d payments completed, want exactly 10", done)
	}
	if b := s.balance(alphaKey, "alice@okbank"); b != 50_000_000-10*1_000_000 {
		t.Fatalf("alice's balance = %d", b)
	}
	id, _ := s.pay(alphaKey, "past-1", "alice@okbank", "bob@okbank", 1)
	failedWith(t, s.settled(alphaKey, id), "DAILY_LIMIT_EXCEEDED", "Z8")

	// With the count and new-account limits off, a new account pays more than Rs 5,000 to persons, more
	// than ten times; every RRN is unique.
	s.open(betaKey, "dave@okbank", "Dave", "")
	s.deposit(betaKey, "dave@okbank", 5_000_000)
	ids = make([]string, 0, 200)
	for i := 0; i < 200; i++ {
		id, _ := s.pay(betaKey, fmt.Sprintf("many-%d", i), "dave@okbank", "bob@okbank", 20_000)
		ids = append(ids, id)
	}
	for _, id := range ids {
		p := s.settled(betaKey, id)
		completed(t, p)
		if rrns[p.RRN] {
			t.Fatalf("rrn %s given twice", p.RRN)
		}
		rrns[p.RRN] = true
	}
}
