package main

// The attack table of docs/architecture.md ("Trust inside"), tried for real: the four services run as
// processes, and the test is the attacker. Each attack is a row: what was tried and what the attacker saw.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"upi/shared/contract"
	"upi/shared/contract/webhook"
	"upi/shared/platform/servicetoken"
	"upi/testenv"
)

// stack is the four services in development mode (the development keys: psp-alpha's alpha-secret,
// psp-beta's beta-secret, the operator's dev-operator-secret, the services' development tokens).
type stack struct {
	gw, cmd, qry, cons *testenv.Service
}

func startStack(t *testing.T) *stack {
	t.Helper()
	_, dbURL := testenv.PostgresPool(t)
	cmd := testenv.StartService(t, "command-service", map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "warn"})
	qry := testenv.StartService(t, "query-service", map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "warn"})
	cons := testenv.StartService(t, "event-consumers", map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "warn",
		"COMMAND_SERVICE_URL": cmd.URL})
	gw := testenv.StartService(t, "api-gateway", map[string]string{"REDIS_URL": testenv.Redis(t), "LOG_LEVEL": "warn",
		"COMMAND_SERVICE_URL": cmd.URL, "QUERY_SERVICE_URL": qry.URL})
	return &stack{gw: gw, cmd: cmd, qry: qry, cons: cons}
}

// answer is what the attacker saw.
type answer struct {
	status int
	header http.Header
	body   string
	code   string // problem+json code, if any
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.status, strings.TrimSpace(a.body)) }

func send(t *testing.T, rt http.RoundTripper, method, u, body string, header map[string]string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if rt == nil {
		rt = http.DefaultTransport
	}
	resp, err := (&http.Client{Transport: rt, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		var p struct{ Code string }
		_ = json.Unmarshal(b, &p)
		a.code = p.Code
	}
	return a
}

// client calls the public API with key.
func (s *stack) client(t *testing.T, key, method, path, body string) answer {
	t.Helper()
	h := map[string]string{"Authorization": "Bearer " + key}
	if method == http.MethodPost {
		h[contract.HeaderIdempotencyKey] = fmt.Sprintf("attack-%d", time.Now().UnixNano())
	}
	return send(t, nil, method, s.gw.URL+path, body, h)
}

func (s *stack) must(t *testing.T, status int, key, method, path, body string) map[string]any {
	t.Helper()
	a := s.client(t, key, method, path, body)
	if a.status != status {
		t.Fatalf("%s %s = %s, want %d", method, path, a, status)
	}
	var out map[string]any
	_ = json.Unmarshal([]byte(a.body), &out)
	return out
}

const (
	alphaKey    = "alpha-secret"
	betaKey     = "beta-secret"
	operatorKey = testenv.OperatorKey
)

// refused checks one row of the table: the attacker got status (and code, when one is given), never
// the resource.
func refused(t *testing.T, attack string, a answer, status int, code string) {
	t.Helper()
	if a.status != status || (code != "" && a.code != code) {
		t.Errorf("%s: got %s, want %d %s", attack, a, status, code)
	}
}

func TestAttackTable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the four services")
	}
	s := startStack(t)

	// psp-alpha's world: alice and carol (persons), shop (a merchant), a payment alice -> shop, a refund
	// of it, and a collect request from shop to carol.
	s.must(t, 201, alphaKey, "POST", "/v1/accounts", `{"vpa":"alice@okbank","holder_name":"Alice"}`)
	s.must(t, 201, alphaKey, "POST", "/v1/accounts", `{"vpa":"carol@okbank","holder_name":"Carol"}`)
	s.must(t, 201, alphaKey, "POST", "/v1/accounts", `{"vpa":"shop@okbank","holder_name":"Shop","type":"ENTITY","mcc":"5411"}`)
	s.must(t, 201, betaKey, "POST", "/v1/accounts", `{"vpa":"mallory@okbank","holder_name":"Mallory"}`)
	s.must(t, 201, alphaKey, "POST", "/v1/accounts/alice@okbank/deposits", `{"amount_paise":50000,"reference":"n-1"}`)
	pay := s.must(t, 202, alphaKey, "POST", "/v1/payments", `{"payer_vpa":"alice@okbank","payee_vpa":"shop@okbank","amount_paise":2000}`)
	paymentID := pay["payment_id"].(string)
	done := s.must(t, 200, alphaKey, "GET", "/v1/payments/"+paymentID+"?wait=10s&min_position="+pay["position"].(string), "")
	if done["status"] != "COMPLETED" {
		t.Fatalf("payment = %v", done)
	}
	refund := s.must(t, 202, alphaKey, "POST", "/v1/payments/"+paymentID+"/refunds", `{"amount_paise":500,"reason":"r"}`)
	refundID := refund["refund_id"].(string)
	collect := s.must(t, 201, alphaKey, "POST", "/v1/collect-requests", `{"payee_vpa":"shop@okbank","payer_vpa":"carol@okbank","amount_paise":100}`)
	collectID := collect["collect_id"].(string)
	rrn, _ := done["rrn"].(string)

	t.Run("cross-tenant reads and writes with another client's key", func(t *testing.T) {
		for _, tc := range []struct {
			attack, method, path, body string
			status                     int
			code                       string
		}{
			{"read another client's account", "GET", "/v1/accounts/alice@okbank", "", 404, "ACCOUNT_NOT_FOUND"},
			{"read its balance", "GET", "/v1/accounts/alice@okbank/balance", "", 404, "ACCOUNT_NOT_FOUND"},
			{"read its transactions", "GET", "/v1/accounts/alice@okbank/transactions", "", 404, "ACCOUNT_NOT_FOUND"},
			{"list the collect requests it is asked to pay", "GET", "/v1/accounts/carol@okbank/collect-requests", "", 404, "ACCOUNT_NOT_FOUND"},
			{"deposit into it", "POST", "/v1/accounts/alice@okbank/deposits", `{"amount_paise":1,"reference":"x"}`, 404, "ACCOUNT_NOT_FOUND"},
			{"pay from it", "POST", "/v1/payments", `{"payer_vpa":"alice@okbank","payee_vpa":"mallory@okbank","amount_paise":100}`, 404, "ACCOUNT_NOT_FOUND"},
			{"read a payment between others", "GET", "/v1/payments/" + paymentID, "", 404, "PAYMENT_NOT_FOUND"},
			{"read its audit trail", "GET", "/v1/payments/" + paymentID + "/events", "", 404, "PAYMENT_NOT_FOUND"},
			{"refund it (not the payee's owner)", "POST", "/v1/payments/" + paymentID + "/refunds", `{"amount_paise":1,"reason":"x"}`, 404, "PAYMENT_NOT_FOUND"},
			{"read a refund between others", "GET", "/v1/refunds/" + refundID, "", 404, "REFUND_NOT_FOUND"},
			{"ask money in another's merchant's name", "POST", "/v1/collect-requests", `{"payee_vpa":"shop@okbank","payer_vpa":"mallory@okbank","amount_paise":100}`, 404, "ACCOUNT_NOT_FOUND"},
			{"read a collect request between others", "GET", "/v1/collect-requests/" + collectID, "", 404, "COLLECT_NOT_FOUND"},
			{"approve it in the payer's place", "POST", "/v1/collect-requests/" + collectID + "/approve", `{}`, 404, "COLLECT_NOT_FOUND"},
			{"decline it in the payer's place", "POST", "/v1/collect-requests/" + collectID + "/decline", `{}`, 404, "COLLECT_NOT_FOUND"},
			{"open an account on another's VPA", "POST", "/v1/accounts", `{"vpa":"alice@okbank","holder_name":"Mallory"}`, 409, "ACCOUNT_EXISTS"},
		} {
			refused(t, tc.attack, s.client(t, betaKey, tc.method, tc.path, tc.body), tc.status, tc.code)
		}
		if rrn != "" {
			if a := s.client(t, betaKey, "GET", "/v1/payments?rrn="+rrn, ""); a.status != 200 || strings.Contains(a.body, paymentID) {
				t.Errorf("find another's payment by its RRN: %s", a)
			}
		}
		// A lookup is open to every client by contract (UPI's address validation): the name, never more.
		if a := s.client(t, betaKey, "GET", "/v1/vpas/alice@okbank", ""); a.status != 200 ||
			strings.Contains(a.body, "balance") || strings.Contains(a.body, "psp-alpha") {
			t.Errorf("lookup leaks more than the name: %s", a)
		}
		// And nothing moved: alice still has what alpha left her.
		if acc := s.must(t, 200, alphaKey, "GET", "/v1/accounts/alice@okbank/balance", ""); acc["balance_paise"] != float64(48000) &&
			acc["balance_paise"] != float64(48500) {
			t.Errorf("alice's balance = %v", acc["balance_paise"])
		}
	})

	t.Run("direct calls to the internal services", func(t *testing.T) {
		forged := map[string]string{contract.HeaderClientID: "psp-alpha", contract.HeaderIdempotencyKey: "direct-1"}
		openBody := `{"vpa":"direct@okbank","holder_name":"Direct"}`
		steps := `{"steps":[{"payment_id":"` + paymentID + `","step":"reject-debit","code":"X"}]}`
		gwTo := func(aud string, next http.RoundTripper) http.RoundTripper {
			return servicetoken.NewSigner(servicetoken.Gateway, servicetoken.DevRoot(servicetoken.Gateway)).Transport(aud, next)
		}
		consTo := servicetoken.NewSigner(servicetoken.EventConsumers, servicetoken.DevRoot(servicetoken.EventConsumers)).Transport
		attacker := servicetoken.NewSigner(servicetoken.Gateway, "made-up-by-the-attacker-0123456789abcdef").Transport

		refused(t, "command-service: open an account with a forged X-Client-ID, no token",
			send(t, nil, "POST", s.cmd.URL+"/v1/accounts", openBody, forged), 401, "UNAUTHENTICATED")
		refused(t, "command-service: debit/reject any payment via /internal/steps, no token",
			send(t, nil, "POST", s.cmd.URL+"/internal/steps", steps, map[string]string{contract.HeaderClientID: "event-consumers"}), 401, "UNAUTHENTICATED")
		refused(t, "query-service: read any account with a forged X-Client-ID, no token",
			send(t, nil, "GET", s.qry.URL+"/v1/accounts/alice@okbank", "", forged), 401, "UNAUTHENTICATED")
		refused(t, "command-service: a token signed with a key of the attacker's",
			send(t, attacker(servicetoken.CommandService, nil), "POST", s.cmd.URL+"/v1/accounts", openBody, forged), 401, "UNAUTHENTICATED")
		refused(t, "query-service: a token signed with a key of the attacker's",
			send(t, attacker(servicetoken.QueryService, nil), "GET", s.qry.URL+"/v1/accounts/alice@okbank", "", forged), 401, "UNAUTHENTICATED")
		refused(t, "command-service: the gateway's token made for the query service",
			send(t, gwTo(servicetoken.QueryService, nil), "POST", s.cmd.URL+"/v1/accounts", openBody, forged), 401, "UNAUTHENTICATED")
		refused(t, "command-service: the gateway's token on the workflow's route",
			send(t, gwTo(servicetoken.CommandService, nil), "POST", s.cmd.URL+"/internal/steps", steps, nil), 403, "FORBIDDEN")
		refused(t, "command-service: the consumers' token on a client's route",
			send(t, consTo(servicetoken.CommandService, nil), "POST", s.cmd.URL+"/v1/accounts", openBody, forged), 403, "FORBIDDEN")
		refused(t, "query-service: the consumers' token (not a caller of the query service)",
			send(t, consTo(servicetoken.QueryService, nil), "GET", s.qry.URL+"/v1/accounts/alice@okbank", "", forged), 401, "UNAUTHENTICATED")

		// Replays: a token seen on the wire (here, captured from a real call) used again, as is or
		// for another request.
		c := &capture{}
		if a := send(t, gwTo(servicetoken.QueryService, c), "GET", s.qry.URL+"/v1/accounts/alice@okbank", "", forged); a.status != 200 {
			t.Fatalf("the gateway's own call = %s", a)
		}
		token := c.last.Header.Get("Authorization")
		refused(t, "query-service: a captured token replayed as is",
			send(t, nil, "GET", s.qry.URL+"/v1/accounts/alice@okbank", "", map[string]string{"Authorization": token,
				contract.HeaderClientID: "psp-alpha", contract.HeaderIdempotencyKey: "direct-1"}), 401, "UNAUTHENTICATED")
		c = &capture{}
		send(t, gwTo(servicetoken.CommandService, c), "POST", s.cmd.URL+"/v1/payments",
			`{"payer_vpa":"alice@okbank","payee_vpa":"carol@okbank","amount_paise":100}`,
			map[string]string{contract.HeaderClientID: "psp-alpha", contract.HeaderIdempotencyKey: "direct-pay-1"})
		token = c.last.Header.Get("Authorization")
		refused(t, "command-service: a captured payment's token on another body (payee, amount)",
			send(t, nil, "POST", s.cmd.URL+"/v1/payments", `{"payer_vpa":"alice@okbank","payee_vpa":"mallory@okbank","amount_paise":40000}`,
				map[string]string{"Authorization": token, contract.HeaderIdempotencyKey: "direct-pay-1"}), 401, "UNAUTHENTICATED")
		refused(t, "command-service: a captured payment's token with a new Idempotency-Key",
			send(t, nil, "POST", s.cmd.URL+"/v1/payments", `{"payer_vpa":"alice@okbank","payee_vpa":"carol@okbank","amount_paise":100}`,
				map[string]string{"Authorization": token, contract.HeaderIdempotencyKey: "direct-pay-2"}), 401, "UNAUTHENTICATED")

		// Expired: a token made more than its lifetime ago (signed with the right key: a key that leaked
		// is worth a token for 30 seconds, no more).
		refused(t, "command-service: an expired token", send(t, nil, "POST", s.cmd.URL+"/v1/accounts", openBody,
			map[string]string{"Authorization": "Bearer " + expiredToken(t), contract.HeaderIdempotencyKey: "direct-1"}), 401, "UNAUTHENTICATED")

		// None of it opened an account.
		refused(t, "(the account the attacks tried to open does not exist)",
			s.client(t, alphaKey, "GET", "/v1/vpas/direct@okbank", ""), 404, "VPA_NOT_FOUND")

		// Each refusal is counted, by reason, on the operations listener.
		metrics := send(t, nil, "GET", s.cmd.OpsURL+"/metrics", "", nil).body
		for _, reason := range []string{"missing", "invalid", "expired", "mismatch", "wrong_service"} {
			if !strings.Contains(metrics, `service_auth_refused_total{reason="`+reason+`"}`) ||
				strings.Contains(metrics, `service_auth_refused_total{reason="`+reason+`"} 0`+"\n") {
				t.Errorf("command-service counted no %s refusal", reason)
			}
		}
		if qm := send(t, nil, "GET", s.qry.OpsURL+"/metrics", "", nil).body; strings.Contains(qm, `service_auth_refused_total{reason="replayed"} 0`+"\n") {
			t.Error("query-service counted no replayed refusal")
		}
	})

	t.Run("operations and admin routes", func(t *testing.T) {
		for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/heap", "/admin/rebuild/all"} {
			for _, method := range []string{"GET", "POST"} {
				a := send(t, nil, method, s.gw.URL+path, "", nil)
				if a.status != 404 || strings.Contains(a.body, "gateway_") {
					t.Errorf("public port: %s %s = %s", method, path, a)
				}
			}
		}
		if a := send(t, nil, "GET", s.gw.URL+"/readyz", "", nil); a.status != 200 || strings.Contains(a.body, "redis") {
			t.Errorf("public /readyz says more than ready: %s", a)
		}
		refused(t, "consumers: rebuild on its own port, no token",
			send(t, nil, "POST", s.cons.URL+"/admin/rebuild/all", "", nil), 401, "UNAUTHENTICATED")
		refused(t, "consumers: rebuild on its own port with the gateway's token for a client",
			send(t, servicetoken.NewSigner(servicetoken.Gateway, servicetoken.DevRoot(servicetoken.Gateway)).Transport(servicetoken.EventConsumers, nil),
				"POST", s.cons.URL+"/admin/rebuild/all", "", map[string]string{contract.HeaderClientID: "psp-alpha"}), 403, "FORBIDDEN")
		refused(t, "consumers: rebuild on the operations listener, no key",
			send(t, nil, "POST", s.cons.OpsURL+"/admin/rebuild/all", "", nil), 401, "UNAUTHENTICATED")
		refused(t, "consumers: rebuild on the operations listener with a client's key",
			send(t, nil, "POST", s.cons.OpsURL+"/admin/rebuild/all", "", map[string]string{"Authorization": "Bearer " + alphaKey}), 401, "UNAUTHENTICATED")
		refused(t, "command-service: profiles on the operations listener, no key",
			send(t, nil, "GET", s.cmd.OpsURL+"/debug/pprof/heap", "", nil), 401, "UNAUTHENTICATED")
		refused(t, "gateway: an operator route with a client's key",
			s.client(t, alphaKey, "GET", "/v1/ops/ledger-check", ""), 403, "FORBIDDEN")
		refused(t, "gateway: a client route with the operator's key",
			s.client(t, operatorKey, "GET", "/v1/accounts/alice@okbank", ""), 403, "FORBIDDEN")
		// The operator's key opens the admin route on the operations listener.
		if a := send(t, nil, "POST", s.cons.OpsURL+"/admin/rebuild/payments", "", map[string]string{"Authorization": "Bearer " + operatorKey}); a.status != 202 {
			t.Errorf("the operator's rebuild = %s", a)
		}
	})

	t.Run("oversized and slow bodies", func(t *testing.T) {
		big := `{"vpa":"big@okbank","holder_name":"` + strings.Repeat("x", 70<<10) + `"}`
		refused(t, "gateway: a 70 KiB body", s.client(t, alphaKey, "POST", "/v1/accounts", big), 413, "BODY_TOO_LARGE")
		u, _ := url.Parse(s.gw.URL)
		// Slow headers (slowloris): the server hangs up after its ReadHeaderTimeout (5s).
		slow := func(partial string, within time.Duration) error {
			conn, err := net.Dial("tcp", u.Host)
			if err != nil {
				return err
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, partial); err != nil {
				return err
			}
			_ = conn.SetReadDeadline(time.Now().Add(within))
			_, err = bufio.NewReader(conn).ReadString('\n')
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return fmt.Errorf("still open after %s", within)
			}
			return nil // closed, or answered (408/400): either way, not held
		}
		errs := make(chan error, 2)
		go func() { errs <- slow("GET /v1/accounts/alice@okbank HTTP/1.1\r\nHost: x\r\n", 8*time.Second) }()
		go func() {
			errs <- slow("POST /v1/accounts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+alphaKey+
				"\r\nIdempotency-Key: slow\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"vpa\"", 20*time.Second)
		}()
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("slow request: %v", err)
			}
		}
	})
}

// capture records the last request it sent (with its token).
type capture struct{ last *http.Request }

func (c *capture) RoundTrip(r *http.Request) (*http.Response, error) {
	c.last = r
	return http.DefaultTransport.RoundTrip(r)
}

// expiredToken is a token of the gateway for the command service, for POST /v1/accounts, made a minute ago.
func expiredToken(t *testing.T) string {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://x/v1/accounts", strings.NewReader(`{"vpa":"direct@okbank","holder_name":"Direct"}`))
	req.Header.Set(contract.HeaderIdempotencyKey, "direct-1")
	req.Header.Set(contract.HeaderClientID, "psp-alpha")
	token, err := servicetoken.MintAt(servicetoken.Gateway, servicetoken.DevRoot(servicetoken.Gateway), servicetoken.CommandService,
		req, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// TestStartRefusesDefaultSecrets: outside development mode (UPI_ENV unset), each service started with a
// development key, a default password or an empty one exits non-zero, naming the variable; with secrets
// of its own it starts.
func TestStartRefusesDefaultSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the four services")
	}
	_, dbURL := testenv.PostgresPool(t)
	withPassword := strings.Replace(dbURL, "postgres://postgres@", "postgres://postgres:Zq8-long-random-password@", 1)
	gwKey := "a-long-random-service-key-of-the-gateway-0123"
	consKey := "a-long-random-service-key-of-the-consumers-01"
	goodGateway := map[string]string{"API_KEYS": "psp-alpha=a-long-random-client-key-01", "SERVICE_KEY": gwKey,
		"REDIS_URL": "redis://:Zq8-long-random-password@127.0.0.1:1/0"}
	goodCommand := map[string]string{"DATABASE_URL": withPassword, "SERVICE_PEERS": "api-gateway=" +
		servicetoken.DeriveKey(gwKey, servicetoken.CommandService) + ",event-consumers=" + servicetoken.DeriveKey(consKey, servicetoken.CommandService)}
	goodQuery := map[string]string{"DATABASE_URL": withPassword, "SERVICE_PEERS": "api-gateway=" + servicetoken.DeriveKey(gwKey, servicetoken.QueryService)}
	goodConsumers := map[string]string{"DATABASE_URL": withPassword, "SERVICE_KEY": consKey,
		"RABBITMQ_URL": "amqp://upi:Zq8-long-random-password@127.0.0.1:1/"}
	// Webhook signing secrets are derived from a key the command service and the consumers share.
	webhookKey := "a-long-random-webhook-secret-key-0123456789"
	goodCommand["WEBHOOK_SECRET_KEY"], goodConsumers["WEBHOOK_SECRET_KEY"] = webhookKey, webhookKey
	with := func(base map[string]string, k, v string) map[string]string {
		out := map[string]string{}
		for a, b := range base {
			out[a] = b
		}
		if v == "-" {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	for _, tc := range []struct {
		service, name string
		env           map[string]string
		variable      string
	}{
		{"api-gateway", "no settings at all (the development API keys)", map[string]string{}, "API_KEYS"},
		{"api-gateway", "a development API key", with(goodGateway, "API_KEYS", "psp-alpha=alpha-secret"), "API_KEYS"},
		{"api-gateway", "a development operator key", with(goodGateway, "OPERATOR_KEYS", "operator=dev-operator-secret"), "OPERATOR_KEYS"},
		{"api-gateway", "no service key", with(goodGateway, "SERVICE_KEY", "-"), "SERVICE_KEY"},
		{"api-gateway", "the development service key", with(goodGateway, "SERVICE_KEY", servicetoken.DevRoot(servicetoken.Gateway)), "SERVICE_KEY"},
		{"api-gateway", "Redis without a password", with(goodGateway, "REDIS_URL", "redis://127.0.0.1:1/0"), "REDIS_URL"},
		{"command-service", "no settings at all (no database password)", map[string]string{}, "DATABASE_URL"},
		{"command-service", "the development database password", with(goodCommand, "DATABASE_URL",
			"postgres://upi:upi-dev-password@127.0.0.1:1/upi"), "DATABASE_URL"},
		{"command-service", "no service peers", with(goodCommand, "SERVICE_PEERS", "-"), "SERVICE_PEERS"},
		{"command-service", "the development service peers", with(goodCommand, "SERVICE_PEERS", "api-gateway="+
			servicetoken.DeriveKey(servicetoken.DevRoot(servicetoken.Gateway), servicetoken.CommandService)+",event-consumers=x"), "SERVICE_PEERS"},
		{"query-service", "the command service's login password", with(goodQuery, "DATABASE_URL",
			"postgres://upi_query_login:upi-query-dev-password@127.0.0.1:1/upi"), "DATABASE_URL"},
		{"query-service", "no service peers", with(goodQuery, "SERVICE_PEERS", "-"), "SERVICE_PEERS"},
		{"event-consumers", "RabbitMQ's guest", with(goodConsumers, "RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:1/"), "RABBITMQ_URL"},
		{"event-consumers", "no service key", with(goodConsumers, "SERVICE_KEY", "-"), "SERVICE_KEY"},
		{"event-consumers", "an empty database password", with(goodConsumers, "DATABASE_URL", "postgres://upi:@127.0.0.1:1/upi"), "DATABASE_URL"},
		{"command-service", "no webhook secret key", with(goodCommand, "WEBHOOK_SECRET_KEY", "-"), "WEBHOOK_SECRET_KEY"},
		{"event-consumers", "the development webhook secret key", with(goodConsumers, "WEBHOOK_SECRET_KEY", webhook.DevSecretKey), "WEBHOOK_SECRET_KEY"},
		{"event-consumers", "a short webhook secret key", with(goodConsumers, "WEBHOOK_SECRET_KEY", "short"), "WEBHOOK_SECRET_KEY"},
	} {
		t.Run(tc.service+"/"+tc.name, func(t *testing.T) {
			code, out := runProduction(t, tc.service, tc.env, 10*time.Second)
			if code == 0 || !strings.Contains(out, tc.variable) || !strings.Contains(out, "refusing to start") {
				t.Errorf("exit %d, output:\n%s", code, out)
			}
		})
	}
	// The controls: with secrets of their own, the services start (and are stopped by the timeout).
	for service, env := range map[string]map[string]string{"api-gateway": goodGateway, "command-service": goodCommand,
		"query-service": goodQuery, "event-consumers": with(goodConsumers, "RELAY_ENABLED", "false")} {
		if code, out := runProduction(t, service, env, 3*time.Second); code != -1 {
			t.Errorf("%s with secrets of its own: exit %d\n%s", service, code, out)
		}
	}
}

// runProduction runs a service in production mode with env (and free addresses), and returns its exit
// code (-1 when it was still running at the timeout) and its output.
func runProduction(t *testing.T, service string, env map[string]string, timeout time.Duration) (int, string) {
	t.Helper()
	bin := testenv.Binary(t, service)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "UPI_ENV", "API_KEYS", "OPERATOR_KEYS", "SERVICE_KEY", "SERVICE_PEERS", "DATABASE_URL", "REDIS_URL", "RABBITMQ_URL",
			"WEBHOOK_SECRET_KEY":
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	prefix := map[string]string{"api-gateway": "GATEWAY", "command-service": "COMMAND_SERVICE",
		"query-service": "QUERY_SERVICE", "event-consumers": "EVENT_CONSUMERS"}[service]
	cmd.Env = append(cmd.Env, prefix+"_ADDR="+testenv.FreeAddr(t), prefix+"_OPS_ADDR="+testenv.FreeAddr(t), "LOG_LEVEL=warn")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return -1, string(out)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}
