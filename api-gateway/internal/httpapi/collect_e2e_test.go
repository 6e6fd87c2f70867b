package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"upi/shared/contract"
	"upi/shared/contract/problem"
)

func (s *upiStack) collectReq(key, idem, payee, payer string, paise, expires int64) *result {
	return s.post(key, "/v1/collect-requests", idem,
		fmt.Sprintf(`{"payee_vpa":%q,"payer_vpa":%q,"amount_paise":%d,"note":"order 7","expires_in_seconds":%d}`, payee, payer, paise, expires))
}

func collectOf(t *testing.T, res *result, status int) contract.Collect {
	t.Helper()
	var c contract.Collect
	if res.status != status || json.Unmarshal(res.body, &c) != nil || c.CollectID == "" {
		t.Fatalf("collect answer %d %s, want %d", res.status, res.body, status)
	}
	return c
}

// collectNow reads a collect request until it has status want, or fails after d.
func (s *upiStack) collectNow(key, id, want string, d time.Duration) contract.Collect {
	s.t.Helper()
	deadline := time.Now().Add(d)
	var c contract.Collect
	for time.Now().Before(deadline) {
		res := s.do(req{method: http.MethodGet, path: "/v1/collect-requests/" + id, key: key})
		if res.status == http.StatusOK && json.Unmarshal(res.body, &c) == nil && c.Status == want {
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("collect %s: %+v, not %s within %s", id, c, want, d)
	return c
}

// TestE2ECollectRequests: a merchant's collect approved by the payer completes a payment, approved twice
// concurrently it starts one; declined it is ZA; left alone past its 60 s expiry it is EXPIRED / U69
// within 5 s and approving it then is COLLECT_EXPIRED; a person cannot send one.
func TestE2ECollectRequests(t *testing.T) {
	s := newUPIStack(t, map[string]string{"LIMIT_DAILY_PAISE": "0", "LIMIT_DAILY_P2P_COUNT": "0", "LIMIT_NEW_ACCOUNT_PAISE": "0"})
	s.open(alphaKey, "cust@okbank", "Customer", "")
	s.open(betaKey, "shop@okbank", "Kirana Store", `,"type":"ENTITY","mcc":"5411"`)
	s.open(betaKey, "friend@okbank", "Friend", "")
	s.deposit(alphaKey, "cust@okbank", 100_000)

	// The one that expires is made first, so its wait overlaps the rest.
	late := collectOf(t, s.collectReq(betaKey, "c-late", "shop@okbank", "cust@okbank", 500, 60), http.StatusCreated)
	expiresAt, err := time.Parse(time.RFC3339Nano, late.ExpiresAt)
	if err != nil || late.Status != contract.CollectPending {
		t.Fatalf("late collect %+v", late)
	}

	// A person cannot send one; nor a merchant for an account not its own; nor to an unknown payer.
	expect(t, s.collectReq(betaKey, "c-p2p", "friend@okbank", "cust@okbank", 100, 600), http.StatusUnprocessableEntity, problem.CodeCollectNotAllowed)
	expect(t, s.collectReq(alphaKey, "c-theft", "shop@okbank", "friend@okbank", 100, 600), http.StatusNotFound, problem.CodeAccountNotFound)
	expect(t, s.collectReq(betaKey, "c-ghost", "shop@okbank", "ghost@okbank", 100, 600), http.StatusUnprocessableEntity, problem.CodePayerNotFound)
	expect(t, s.collectReq(betaKey, "c-short", "shop@okbank", "cust@okbank", 100, 59), http.StatusBadRequest, problem.CodeValidation)

	// Approved, twice at once: one payment, which completes.
	col := collectOf(t, s.collectReq(betaKey, "c-1", "shop@okbank", "cust@okbank", 2_500, 600), http.StatusCreated)
	expect(t, s.post(betaKey, "/v1/collect-requests/"+col.CollectID+"/approve", "a-thief", ""), http.StatusNotFound, problem.CodeCollectNotFound)
	var wg sync.WaitGroup
	answers := make([]*result, 2)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = s.post(alphaKey, "/v1/collect-requests/"+col.CollectID+"/approve", fmt.Sprintf("a-%d", i), "")
		}()
	}
	wg.Wait()
	var pids []string
	for _, a := range answers {
		c := collectOf(t, a, http.StatusAccepted)
		if c.Status != contract.CollectApproved || c.PaymentID == nil {
			t.Fatalf("approval %+v", c)
		}
		pids = append(pids, *c.PaymentID)
	}
	if pids[0] != pids[1] {
		t.Fatalf("two approvals started two payments: %v", pids)
	}
	p := s.settled(alphaKey, pids[0])
	completed(t, p)
	if p.AmountPaise != 2_500 || p.PayerVPA != "cust@okbank" || p.PayeeVPA != "shop@okbank" {
		t.Fatalf("collect payment %+v", p)
	}
	seen := s.collectNow(betaKey, col.CollectID, contract.CollectApproved, 10*time.Second)
	if seen.PaymentID == nil || *seen.PaymentID != pids[0] {
		t.Fatalf("merchant sees %+v", seen)
	}
	expect(t, s.post(alphaKey, "/v1/collect-requests/"+col.CollectID+"/decline", "d-after", ""), http.StatusUnprocessableEntity, problem.CodeCollectApproved)

	// Declined: ZA; approving it then is COLLECT_DECLINED.
	dec := collectOf(t, s.collectReq(betaKey, "c-2", "shop@okbank", "cust@okbank", 700, 600), http.StatusCreated)
	d := collectOf(t, s.post(alphaKey, "/v1/collect-requests/"+dec.CollectID+"/decline", "d-1", ""), http.StatusOK)
	if d.Status != contract.CollectDeclined || d.NPCICode == nil || *d.NPCICode != "ZA" {
		t.Fatalf("declined %+v", d)
	}
	expect(t, s.post(alphaKey, "/v1/collect-requests/"+dec.CollectID+"/approve", "a-after", ""), http.StatusUnprocessableEntity, problem.CodeCollectDeclined)

	// The payer's inbox, newest first, filtered and paginated.
	s.collectNow(alphaKey, dec.CollectID, contract.CollectDeclined, 10*time.Second)
	res := s.do(req{method: http.MethodGet, path: "/v1/accounts/cust@okbank/collect-requests?limit=1", key: alphaKey})
	var page contract.CollectPage
	if res.status != http.StatusOK || json.Unmarshal(res.body, &page) != nil || len(page.Items) != 1 ||
		page.Items[0].CollectID != dec.CollectID || page.NextCursor == "" {
		t.Fatalf("inbox page 1: %d %s", res.status, res.body)
	}
	res = s.do(req{method: http.MethodGet, path: "/v1/accounts/cust@okbank/collect-requests?status=PENDING", key: alphaKey})
	if res.status != http.StatusOK || json.Unmarshal(res.body, &page) != nil || len(page.Items) != 1 || page.Items[0].CollectID != late.CollectID {
		t.Fatalf("pending inbox: %d %s", res.status, res.body)
	}
	expect(t, s.do(req{method: http.MethodGet, path: "/v1/accounts/cust@okbank/collect-requests", key: betaKey}), http.StatusNotFound, problem.CodeAccountNotFound)

	// Left alone: EXPIRED / U69 within 5 s of expires_at; approving it then is COLLECT_EXPIRED.
	time.Sleep(time.Until(expiresAt))
	e := s.collectNow(alphaKey, late.CollectID, contract.CollectExpired, 5*time.Second)
	if e.NPCICode == nil || *e.NPCICode != "U69" {
		t.Fatalf("expired %+v", e)
	}
	expect(t, s.post(alphaKey, "/v1/collect-requests/"+late.CollectID+"/approve", "a-late", ""), http.StatusUnprocessableEntity, problem.CodeCollectExpired)
}
