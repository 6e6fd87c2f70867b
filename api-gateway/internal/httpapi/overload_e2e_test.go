package httpapi_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"upi/shared/contract/problem"
)

// The command service saturated (one group at a time, one command waiting at most) behind a gateway that
// admits 64 commands at once: what either sheds is answered 503 OVERLOADED, problem+json with Retry-After,
// documented for the route, and wrote nothing; no claim is kept on the key, so the client's retry with the
// same Idempotency-Key runs the command, once.
func TestE2EOverloadedCommandServiceSheds503(t *testing.T) {
	s := newStack(t, options{limits: map[string]string{"COMMIT_GROUPS": "1", "COMMIT_QUEUE_MAX": "1"}})
	const n = 120
	answers := make([]*result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			answers[i] = s.post(alphaKey, "/v1/accounts", fmt.Sprintf("open-%d", i),
				fmt.Sprintf(`{"vpa":"u%d@okbank","holder_name":"Holder"}`, i))
		})
	}
	wg.Wait()
	var shed []int
	for i, r := range answers {
		switch {
		case r.status == http.StatusCreated:
		case r.status == http.StatusServiceUnavailable && r.problem.Code == problem.CodeOverloaded:
			if r.header.Get("Retry-After") == "" {
				t.Errorf("503 OVERLOADED without Retry-After: %s", r)
			}
			shed = append(shed, i)
		default:
			t.Errorf("open %d: %d %s, want 201 or 503 OVERLOADED", i, r.status, r)
		}
	}
	if len(shed) == 0 {
		t.Fatalf("%d concurrent commands against a queue of one: none was shed", n)
	}
	t.Logf("%d of %d shed", len(shed), n)
	for _, i := range shed {
		if got := s.events("", fmt.Sprintf("u%d@okbank", i)); got != 0 {
			t.Errorf("shed request %d wrote %d events", i, got)
		}
	}
	// Each shed request retried with its key, as a client told Retry-After would: it runs, once. (A 409
	// IN_USE is possible too: on a loaded machine the gateway's release of a claim can miss Redis's
	// 300 ms budget, and the claim then lapses after its TTL.)
	for _, i := range shed {
		deadline := time.Now().Add(45 * time.Second)
		for {
			r := s.post(alphaKey, "/v1/accounts", fmt.Sprintf("open-%d", i), fmt.Sprintf(`{"vpa":"u%d@okbank","holder_name":"Holder"}`, i))
			if r.status == http.StatusCreated {
				break
			}
			if r.status != http.StatusServiceUnavailable && r.problem.Code != problem.CodeIdempotencyKeyInUse || time.Now().After(deadline) {
				t.Fatalf("retry of shed request %d: %d %s", i, r.status, r)
			}
			time.Sleep(time.Second)
		}
	}
	if got := s.events("AccountOpened", ""); got != n {
		t.Errorf("%d accounts opened after the retries, want %d", got, n)
	}
}
