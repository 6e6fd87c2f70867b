package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"upi/command-service/internal/app"
	"upi/command-service/internal/domain"
	"upi/command-service/internal/httpapi"
	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/observability"
	"upi/shared/platform/servicetoken"
	"upi/testenv"
)

// guardedServer is the service's router behind its token check, with the rules of main.go.
func guardedServer(t *testing.T) string {
	t.Helper()
	pool, _ := testenv.PostgresPool(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	verifier := servicetoken.NewVerifier(servicetoken.VerifierConfig{
		Audience: servicetoken.CommandService,
		Peers:    servicetoken.DevPeers(servicetoken.CommandService, servicetoken.Gateway, servicetoken.EventConsumers),
		Rules: []servicetoken.Rule{
			{Prefix: contract.PathCommandBatch, Callers: []string{servicetoken.Gateway}},
			{Prefix: "/internal/", Callers: []string{servicetoken.EventConsumers}},
			{Prefix: "/v1/", Callers: []string{servicetoken.Gateway}},
		},
	})
	router := observability.NewRouter(observability.RouterConfig{Log: log, Registry: reg, Guard: verifier.Middleware})
	httpapi.Register(router, httpapi.Config{Service: app.New(app.NewStore(pool), domain.Limits{}), Limits: limits, Log: log, Registry: reg})
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	return srv.URL
}

// postBatch sends items as a batch signed by issuer.
func postBatch(t *testing.T, base, issuer string, items []contract.BatchItem) (int, contract.BatchResponse, []byte) {
	t.Helper()
	body, err := json.Marshal(contract.BatchRequest{Items: items})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, base+contract.PathCommandBatch, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Transport: servicetoken.NewSigner(issuer, servicetoken.DevRoot(issuer)).Transport(servicetoken.CommandService, nil)}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out contract.BatchResponse
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("batch answer %s: %v", raw, err)
		}
	}
	return resp.StatusCode, out, raw
}

func resultCode(t *testing.T, r contract.BatchResult) string {
	t.Helper()
	var p problem.Problem
	if r.Header["Content-Type"] != problem.ContentType || json.Unmarshal(r.Body, &p) != nil || p.Status != r.Status {
		t.Fatalf("result %d %v %s is not a problem", r.Status, r.Header, r.Body)
	}
	return p.Code
}

// A batch's items are answered each as its own request would be, in order: each acts for its own client
// (another client's account is not found), a repeat is replayed with the same body, a missing key refused;
// an item can reach no route but the gateway's commands, and a batch is the gateway's alone.
func TestBatchAnswersEachItemAsItsOwnRequest(t *testing.T) {
	base := guardedServer(t)
	open := func(client, key, vpa string) contract.BatchItem {
		return contract.BatchItem{Method: http.MethodPost, Path: "/v1/accounts", Client: client, IdempotencyKey: key,
			RequestID: "req-" + key, Body: []byte(`{"vpa":"` + vpa + `","holder_name":"Holder"}`)}
	}
	deposit := open("psp-beta", "dep-1", "")
	deposit.Path, deposit.Body = "/v1/accounts/alice@okbank/deposits", []byte(`{"amount_paise":100,"reference":"r1"}`)
	items := []contract.BatchItem{
		open("psp-alpha", "a-1", "alice@okbank"),
		open("psp-beta", "b-1", "bob@okbank"),
		open("psp-alpha", "", "carol@okbank"),
		{Method: http.MethodPost, Path: contract.PathSteps, Client: "psp-alpha", Body: []byte(`{"steps":[]}`)},
		{Method: http.MethodPost, Path: contract.PathCommandBatch, Client: "psp-alpha", Body: []byte(`{"items":[]}`)},
		open("", "c-1", "dave@okbank"),
	}
	status, got, raw := postBatch(t, base, servicetoken.Gateway, items)
	if status != http.StatusOK || len(got.Results) != len(items) {
		t.Fatalf("batch = %d %s", status, raw)
	}
	r := got.Results
	if r[0].Status != http.StatusCreated || r[0].Header["Location"] != "/v1/accounts/alice@okbank" || r[0].Header[contract.HeaderIdempotentReplayed] != "" {
		t.Fatalf("open alice: %d %v %s", r[0].Status, r[0].Header, r[0].Body)
	}
	var a contract.Account
	if err := json.Unmarshal(r[0].Body, &a); err != nil || a.VPA != "alice@okbank" {
		t.Fatalf("open alice: %s (%v)", r[0].Body, err)
	}
	if r[1].Status != http.StatusCreated || r[1].Header["Location"] != "/v1/accounts/bob@okbank" {
		t.Fatalf("open bob: %d %v %s", r[1].Status, r[1].Header, r[1].Body)
	}
	for i, want := range map[int]struct {
		status int
		code   string
	}{
		2: {http.StatusBadRequest, problem.CodeIdempotencyKeyRequired},
		3: {http.StatusBadRequest, problem.CodeValidation},
		4: {http.StatusBadRequest, problem.CodeValidation},
		5: {http.StatusUnauthorized, problem.CodeUnauthenticated},
	} {
		if r[i].Status != want.status || resultCode(t, r[i]) != want.code {
			t.Fatalf("item %d = %d %s, want %d %s", i, r[i].Status, r[i].Body, want.status, want.code)
		}
	}

	// Again: the repeat replays byte for byte; psp-beta cannot deposit into psp-alpha's account.
	_, again, _ := postBatch(t, base, servicetoken.Gateway, []contract.BatchItem{items[0], deposit})
	if g := again.Results[0]; g.Status != http.StatusCreated || !bytes.Equal(g.Body, r[0].Body) || g.Header[contract.HeaderIdempotentReplayed] != "true" {
		t.Fatalf("repeat: %d %v %s, want the first answer replayed", g.Status, g.Header, g.Body)
	}
	if g := again.Results[1]; g.Status != http.StatusNotFound || resultCode(t, g) != problem.CodeAccountNotFound {
		t.Fatalf("another client's deposit: %d %s", g.Status, g.Body)
	}

	// The workflow may not send batches; a batch holds 1 to MaxBatchItems items.
	if status, _, raw := postBatch(t, base, servicetoken.EventConsumers, items[:1]); status != http.StatusForbidden {
		t.Fatalf("a batch from event-consumers = %d %s, want 403", status, raw)
	}
	if status, _, raw := postBatch(t, base, servicetoken.Gateway, nil); status != http.StatusBadRequest {
		t.Fatalf("an empty batch = %d %s, want 400", status, raw)
	}
	if status, _, raw := postBatch(t, base, servicetoken.Gateway, make([]contract.BatchItem, contract.MaxBatchItems+1)); status != http.StatusBadRequest {
		t.Fatalf("a batch of %d = %d %s, want 400", contract.MaxBatchItems+1, status, raw)
	}
}
