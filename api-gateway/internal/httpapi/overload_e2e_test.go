package httpapi_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"upi/shared/contract/problem"
)

// The command service saturated (one group at a time, one command waiting at most): the gateway answers
// what it sheds 503 OVERLOADED, problem+json with Retry-After, documented for the route; it keeps no claim
// on the key, so the client's retry with the same Idempotency-Key runs the command, once.
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
	for _, i := range shed {
		r := s.post(alphaKey, "/v1/accounts", fmt.Sprintf("open-%d", i), fmt.Sprintf(`{"vpa":"u%d@okbank","holder_name":"Holder"}`, i))
		expect(t, r, http.StatusCreated, "")
	}
	if got := s.events("AccountOpened", ""); got != n {
		t.Errorf("%d accounts opened after the retries, want %d", got, n)
	}
}
