package main_test

// Spans and logs carry no VPA and no RRN (docs/architecture.md, "Personal data and erasure"): the four real
// services, traced to a receiver in the test and logging at debug, serve a payment flow whose every read
// names the accounts (account, balance, transactions, payee lookup, the RRN search, a refused payment, an
// unknown account); then no span attribute and no log line holds a VPA or the payment's RRN.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"upi/shared/contract"
	"upi/testenv"
)

func TestSpansAndLogsCarryNoVPAOrRRN(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole system")
	}
	recv := &otlpReceiver{traces: map[string][]span{}}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	traced := func(env map[string]string) map[string]string {
		env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.URL
		env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
		env["OTEL_TRACES_SAMPLER"] = "parentbased_always_on"
		env["LOG_LEVEL"] = "debug"
		return env
	}
	dbURL := testenv.Postgres(t)
	cmd := testenv.StartService(t, "command-service", traced(map[string]string{"DATABASE_URL": dbURL}))
	qry := testenv.StartService(t, "query-service", traced(map[string]string{"DATABASE_URL": dbURL}))
	cons := testenv.StartService(t, "event-consumers", traced(map[string]string{"DATABASE_URL": dbURL, "COMMAND_SERVICE_URL": cmd.URL}))
	gw := testenv.StartService(t, "api-gateway", traced(map[string]string{
		"REDIS_URL": testenv.Redis(t), "COMMAND_SERVICE_URL": cmd.URL, "QUERY_SERVICE_URL": qry.URL, "API_KEYS": "psp=key-p"}))
	services := []*testenv.Service{cmd, qry, cons, gw}

	call := func(method, path, idem string, body any) (int, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, gw.URL+path, rd)
		req.Header.Set("Authorization", "Bearer key-p")
		req.Header.Set("Content-Type", "application/json")
		if idem != "" {
			req.Header.Set("Idempotency-Key", idem)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	run := uuid.NewString()[:8]
	payer, payee, unknown := "privpayer"+run+"@okbank", "privpayee"+run+"@okbank", "nobody"+run+"@okbank"
	for _, vpa := range []string{payer, payee} {
		if st, b := call(http.MethodPost, "/v1/accounts", "open-"+vpa, map[string]any{"vpa": vpa, "holder_name": "Holder"}); st != http.StatusCreated {
			t.Fatalf("open %s: %d %s", vpa, st, b)
		}
	}
	if st, b := call(http.MethodPost, "/v1/accounts/"+payer+"/deposits", "fund", map[string]any{"amount_paise": 10000, "reference": "fund"}); st != http.StatusCreated {
		t.Fatalf("deposit: %d %s", st, b)
	}
	st, b := call(http.MethodPost, "/v1/payments", "pay", map[string]any{"payer_vpa": payer, "payee_vpa": payee, "amount_paise": 2500, "note": "rent"})
	if st != http.StatusAccepted {
		t.Fatalf("pay: %d %s", st, b)
	}
	var p contract.Payment
	_ = json.Unmarshal(b, &p)
	deadline := time.Now().Add(30 * time.Second)
	for p.Status != "COMPLETED" {
		if time.Now().After(deadline) {
			t.Fatalf("payment %s not completed: %s", p.PaymentID, p.Status)
		}
		if st, b := call(http.MethodGet, "/v1/payments/"+p.PaymentID+"?wait=5s", "", nil); st == http.StatusOK {
			_ = json.Unmarshal(b, &p)
		}
	}
	if len(p.RRN) != 12 {
		t.Fatalf("payment has RRN %q", p.RRN)
	}
	// Reads that name the people in their paths and queries, and failures that name them in errors.
	for _, path := range []string{"/v1/accounts/" + payer, "/v1/accounts/" + payer + "/balance", "/v1/accounts/" + payer + "/transactions",
		"/v1/vpas/" + payee, "/v1/vpas/" + unknown, "/v1/accounts/" + unknown, "/v1/payments?rrn=" + p.RRN,
		"/v1/payments/" + p.PaymentID + "/events"} {
		if st, b := call(http.MethodGet, path, "", nil); st >= 500 {
			t.Errorf("GET %s: %d %s", path, st, b)
		}
	}
	for i, body := range []map[string]any{
		{"payer_vpa": payer, "payee_vpa": unknown, "amount_paise": 100},   // 422 PAYEE_NOT_FOUND
		{"payer_vpa": unknown, "payee_vpa": payee, "amount_paise": 100},   // 404 ACCOUNT_NOT_FOUND
		{"payer_vpa": payee, "payee_vpa": payer, "amount_paise": 9999999}, // fails INSUFFICIENT_FUNDS
	} {
		if st, b := call(http.MethodPost, "/v1/payments", "bad-"+string(rune('a'+i)), body); st >= 500 {
			t.Errorf("pay %v: %d %s", body, st, b)
		}
	}

	// Wait for the spans of the last reads (the exporters' batch delay), then look at everything.
	time.Sleep(time.Second)
	secrets := []string{payer, payee, unknown, p.RRN}
	checked := 0
	recv.mu.Lock()
	for _, spans := range recv.traces {
		for _, s := range spans {
			checked++
			for k, v := range s.attrs {
				for _, secret := range secrets {
					if strings.Contains(v, secret) {
						t.Errorf("span %s/%q attribute %s = %q carries %s", s.service, s.name, k, v, secret)
					}
				}
			}
			for _, secret := range secrets {
				if strings.Contains(s.name, secret) {
					t.Errorf("span %s/%q is named with %s", s.service, s.name, secret)
				}
			}
		}
	}
	recv.mu.Unlock()
	if checked < 50 {
		t.Errorf("only %d spans arrived", checked)
	}
	for _, svc := range services {
		log := svc.Log()
		if len(log) == 0 {
			t.Errorf("%s logged nothing", svc.Name)
		}
		for _, secret := range secrets {
			if i := bytes.Index(log, []byte(secret)); i >= 0 {
				start := max(0, bytes.LastIndexByte(log[:i], '\n'))
				t.Errorf("%s's log carries %s: %s", svc.Name, secret, log[start:min(len(log), i+200)])
			}
		}
	}
}
