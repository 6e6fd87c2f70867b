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

// refund asks for a refund of payment and returns the answer.
func (s *upiStack) refund(key, idem, payment string, paise int64) *result {
	return s.post(key, "/v1/payments/"+payment+"/refunds", idem, fmt.Sprintf(`{"amount_paise":%d,"reason":"returned"}`, paise))
}

// refunded long-polls a refund until it is terminal.
func (s *upiStack) refunded(key, id string) contract.Refund {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		res := s.do(req{method: http.MethodGet, path: "/v1/refunds/" + id + "?wait=5s", key: key})
		if res.status == http.StatusNotFound {
			time.Sleep(20 * time.Millisecond) // the projection has not reached it yet
			continue
		}
		var r contract.Refund
		if res.status != http.StatusOK || json.Unmarshal(res.body, &r) != nil {
			s.t.Errorf("refund %s: %d %s", id, res.status, res.body)
			return r
		}
		if r.Status != contract.PaymentPending {
			return r
		}
	}
	s.t.Errorf("refund %s not settled in 60s", id)
	return contract.Refund{}
}

func refundID(t *testing.T, res *result) string {
	t.Helper()
	if res.status != http.StatusAccepted {
		t.Fatalf("refund: %d %s, want 202", res.status, res.body)
	}
	var r contract.Refund
	if err := json.Unmarshal(res.body, &r); err != nil || r.RefundID == "" || r.Status != contract.PaymentPending {
		t.Fatalf("refund answer %s (%v)", res.body, err)
	}
	return r.RefundID
}

// TestE2ERefunds, as a merchant's PSP sees them: a payment refunded in two parts and a third refused past
// its amount; 20 concurrent refunds of 10% of one payment of which exactly 10 go through; a person's
// payment not refundable; a merchant without the funds gets a FAILED refund and moves no money; balances
// add up throughout.
func TestE2ERefunds(t *testing.T) {
	s := newUPIStack(t, map[string]string{"LIMIT_DAILY_PAISE": "0", "LIMIT_DAILY_P2P_COUNT": "0", "LIMIT_NEW_ACCOUNT_PAISE": "0"})
	s.open(alphaKey, "cust@okbank", "Customer", "")
	s.open(betaKey, "shop@okbank", "Kirana Store", `,"type":"ENTITY","mcc":"5411"`)
	s.open(betaKey, "friend@okbank", "Friend", "")
	s.deposit(alphaKey, "cust@okbank", 1_000_000)

	// Two partial refunds, then a third past the amount.
	pid, _ := s.pay(alphaKey, "pay-1", "cust@okbank", "shop@okbank", 10_000)
	completed(t, s.settled(alphaKey, pid))
	for i, part := range []int64{3_000, 5_000} {
		r := s.refunded(betaKey, refundID(t, s.refund(betaKey, fmt.Sprintf("ref-1-%d", i), pid, part)))
		if r.Status != contract.PaymentCompleted || r.AmountPaise != part || r.PaymentID != pid {
			t.Fatalf("refund %d = %+v, want COMPLETED of %d", i, r, part)
		}
	}
	expect(t, s.refund(betaKey, "ref-1-2", pid, 2_001), http.StatusUnprocessableEntity, problem.CodeRefundExceedsPayment)
	if p := s.settled(alphaKey, pid); p.RefundedPaise != 8_000 {
		t.Fatalf("payment refunded_paise = %d, want 8000", p.RefundedPaise)
	}
	// Only the payee's owner may refund; to anyone else the payment does not exist.
	expect(t, s.refund(alphaKey, "ref-1-3", pid, 100), http.StatusNotFound, problem.CodePaymentNotFound)

	// A payment to a person cannot be refunded.
	p2p, _ := s.pay(alphaKey, "pay-2", "cust@okbank", "friend@okbank", 500)
	completed(t, s.settled(alphaKey, p2p))
	expect(t, s.refund(betaKey, "ref-2", p2p, 100), http.StatusUnprocessableEntity, problem.CodeRefundNotAllowed)

	// 20 concurrent refunds of 10% each: exactly 10 are taken and complete, the rest refused.
	big, _ := s.pay(alphaKey, "pay-3", "cust@okbank", "shop@okbank", 50_000)
	completed(t, s.settled(alphaKey, big))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var taken []string
	refused := 0
	for i := range 20 {
		wg.Go(func() {
			res := s.refund(betaKey, fmt.Sprintf("ref-3-%d", i), big, 5_000)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case res.status == http.StatusAccepted:
				var r contract.Refund
				_ = json.Unmarshal(res.body, &r)
				taken = append(taken, r.RefundID)
			case res.status == http.StatusUnprocessableEntity && res.problem.Code == problem.CodeRefundExceedsPayment:
				refused++
			default:
				t.Errorf("concurrent refund %d: %d %s", i, res.status, res.body)
			}
		})
	}
	wg.Wait()
	if len(taken) != 10 || refused != 10 {
		t.Fatalf("%d refunds taken and %d refused, want 10 and 10", len(taken), refused)
	}
	for _, id := range taken {
		if r := s.refunded(betaKey, id); r.Status != contract.PaymentCompleted {
			t.Fatalf("refund %s = %+v, want COMPLETED", id, r)
		}
	}

	// Money adds up: the customer paid 10000 + 500 + 50000 and got 8000 + 50000 back.
	if got, want := s.balance(alphaKey, "cust@okbank"), int64(1_000_000-10_000-500-50_000+8_000+50_000); got != want {
		t.Fatalf("customer balance %d, want %d", got, want)
	}
	if got, want := s.balance(betaKey, "shop@okbank"), int64(10_000+50_000-8_000-50_000); got != want {
		t.Fatalf("shop balance %d, want %d", got, want)
	}

	// A merchant without the funds: the refund fails with Z9 and moves no money.
	s.open(betaKey, "poor@okbank", "Poor Store", `,"type":"ENTITY","mcc":"5812"`)
	small, _ := s.pay(alphaKey, "pay-4", "cust@okbank", "poor@okbank", 1_000)
	completed(t, s.settled(alphaKey, small))
	spend, _ := s.pay(betaKey, "pay-5", "poor@okbank", "friend@okbank", 1_000)
	completed(t, s.settled(betaKey, spend))
	r := s.refunded(betaKey, refundID(t, s.refund(betaKey, "ref-4", small, 1_000)))
	if r.Status != contract.PaymentFailed || r.FailureCode == nil || *r.FailureCode != "INSUFFICIENT_FUNDS" ||
		r.NPCICode == nil || *r.NPCICode != "Z9" {
		t.Fatalf("refund by a merchant without funds = %+v, want FAILED INSUFFICIENT_FUNDS / Z9", r)
	}
	if got := s.balance(betaKey, "poor@okbank"); got != 0 {
		t.Fatalf("poor merchant balance %d after a failed refund, want 0", got)
	}
	if p := s.settled(alphaKey, small); p.RefundedPaise != 0 {
		t.Fatalf("refunded_paise %d after a failed refund, want 0", p.RefundedPaise)
	}
}
