package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
)

// TestOverloadShedAtTheEdge: with as many commands under way as the gateway admits, one more is answered
// at once 503 OVERLOADED with Retry-After, without reaching the command service or claiming its key, so
// the client's retry with the same key, once a place is free, runs.
func TestOverloadShedAtTheEdge(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	seen := map[string]int{}
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("Idempotency-Key")]++
		mu.Unlock()
		if r.Header.Get("Idempotency-Key") == "slow" {
			<-release
		}
		httpjson.Write(w, http.StatusCreated, map[string]string{"vpa": "alice@okbank"})
	}))
	t.Cleanup(svc.Close)
	g := newGateway(t, options{commandURL: svc.URL, maxInFlight: 1})

	first := make(chan *result, 1)
	go func() {
		first <- g.do(req{method: "POST", path: "/v1/accounts", key: alphaKey, idem: "slow", body: validAccount})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := seen["slow"]
		mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first command never reached the service")
		}
		time.Sleep(5 * time.Millisecond)
	}

	start := time.Now()
	res := g.do(req{method: "POST", path: "/v1/accounts", key: alphaKey, idem: "shed", body: validAccount})
	expect(t, res, http.StatusServiceUnavailable, problem.CodeOverloaded)
	if res.header.Get("Retry-After") != "1" {
		t.Fatalf("503 OVERLOADED with Retry-After %q, want 1", res.header.Get("Retry-After"))
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("shedding took %v: it must not wait", took)
	}
	if got := counterValue(t, g, "gateway_commands_shed_total"); got != 1 {
		t.Fatalf("gateway_commands_shed_total = %v, want 1", got)
	}

	close(release)
	expect(t, <-first, http.StatusCreated, "")
	expect(t, g.do(req{method: "POST", path: "/v1/accounts", key: alphaKey, idem: "shed", body: validAccount}),
		http.StatusCreated, "")
	mu.Lock()
	defer mu.Unlock()
	if seen["shed"] != 1 {
		t.Fatalf("the shed command reached the service %d times, want once (on its retry)", seen["shed"])
	}
}
