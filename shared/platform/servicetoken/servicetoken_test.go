package servicetoken

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"upi/shared/contract"
)

// echo answers the identity the verifier let through, and the body it passed on.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Seen-Client", r.Header.Get(contract.HeaderClientID))
	w.Header().Set("X-Seen-Operator", r.Header.Get(HeaderOperatorID))
	_, _ = w.Write(b)
})

type fixture struct {
	verifier *Verifier
	srv      *httptest.Server
}

func newFixture(t *testing.T) *fixture {
	v := NewVerifier(VerifierConfig{
		Audience: CommandService,
		Peers:    DevPeers(CommandService, Gateway, EventConsumers),
		Rules: []Rule{
			{Prefix: "/internal/", Callers: []string{EventConsumers}},
			{Prefix: "/v1/", Callers: []string{Gateway}},
		},
		Registry: prometheus.NewRegistry(),
	})
	srv := httptest.NewServer(v.Middleware(echo))
	t.Cleanup(srv.Close)
	return &fixture{verifier: v, srv: srv}
}

// capture is a RoundTripper that records the requests it is given (with their tokens) and sends them.
type capture struct{ last *http.Request }

func (c *capture) RoundTrip(r *http.Request) (*http.Response, error) {
	c.last = r
	return http.DefaultTransport.RoundTrip(r)
}

func call(t *testing.T, rt http.RoundTripper, method, url, body string, header map[string]string) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func gatewayTo(audience string, next http.RoundTripper) http.RoundTripper {
	return NewSigner(Gateway, DevRoot(Gateway)).Transport(audience, next)
}

func TestAValidCallPassesWithTheIdentityOfItsToken(t *testing.T) {
	f := newFixture(t)
	resp := call(t, gatewayTo(CommandService, nil), http.MethodPost, f.srv.URL+"/v1/payments", `{"a":1}`,
		map[string]string{contract.HeaderClientID: "psp-alpha", contract.HeaderIdempotencyKey: "k1"})
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("X-Seen-Client") != "psp-alpha" || string(body) != `{"a":1}` {
		t.Fatalf("valid call = %d client %q body %q", resp.StatusCode, resp.Header.Get("X-Seen-Client"), body)
	}
}

func TestRefusals(t *testing.T) {
	f := newFixture(t)
	expect := func(t *testing.T, resp *http.Response, status int, reason string) {
		t.Helper()
		if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("status %d (%s), want %d problem+json", resp.StatusCode, resp.Header.Get("Content-Type"), status)
		}
		if got := testutil.ToFloat64(f.verifier.refused.WithLabelValues(reason)); got < 1 {
			t.Fatalf("service_auth_refused_total{reason=%q} = %v", reason, got)
		}
	}
	client := map[string]string{contract.HeaderClientID: "psp-alpha"}

	t.Run("no token, a forged X-Client-ID", func(t *testing.T) {
		expect(t, call(t, http.DefaultTransport, http.MethodGet, f.srv.URL+"/v1/accounts/a@b", "", client), 401, ReasonMissing)
	})
	t.Run("forged: signed with a key of the attacker's", func(t *testing.T) {
		forger := NewSigner(Gateway, "a-key-the-attacker-made-up-0123456789abcdef").Transport(CommandService, nil)
		expect(t, call(t, forger, http.MethodGet, f.srv.URL+"/v1/accounts/a@b", "", client), 401, ReasonInvalid)
	})
	t.Run("alg none", func(t *testing.T) {
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": Gateway, "aud": CommandService,
			"exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix(), "jti": "x", "htm": "GET",
			"htu": "/v1/accounts/a@b", "cid": "psp-alpha"}).SignedString(jwt.UnsafeAllowNoneSignatureType)
		expect(t, call(t, http.DefaultTransport, http.MethodGet, f.srv.URL+"/v1/accounts/a@b", "",
			map[string]string{"Authorization": "Bearer " + tok}), 401, ReasonInvalid)
	})
	t.Run("made for another service", func(t *testing.T) {
		expect(t, call(t, gatewayTo(QueryService, nil), http.MethodGet, f.srv.URL+"/v1/accounts/a@b", "", client), 401, ReasonInvalid)
	})
	t.Run("expired", func(t *testing.T) {
		s := NewSigner(Gateway, DevRoot(Gateway))
		s.now = func() time.Time { return time.Now().Add(-time.Minute) }
		expect(t, call(t, s.Transport(CommandService, nil), http.MethodGet, f.srv.URL+"/v1/accounts/a@b", "", client), 401, ReasonExpired)
	})
	t.Run("wrong service: the gateway on the workflow's route", func(t *testing.T) {
		expect(t, call(t, gatewayTo(CommandService, nil), http.MethodPost, f.srv.URL+"/internal/steps", `{}`, client), 403, ReasonForbidden)
	})
	t.Run("wrong service: the consumers on a client route", func(t *testing.T) {
		rt := NewSigner(EventConsumers, DevRoot(EventConsumers)).Transport(CommandService, nil)
		expect(t, call(t, rt, http.MethodPost, f.srv.URL+"/v1/accounts", `{}`, client), 403, ReasonForbidden)
	})
	t.Run("replayed", func(t *testing.T) {
		c := &capture{}
		if resp := call(t, gatewayTo(CommandService, c), http.MethodGet, f.srv.URL+"/v1/accounts/a@b", "", client); resp.StatusCode != 200 {
			t.Fatalf("first use = %d", resp.StatusCode)
		}
		auth := map[string]string{"Authorization": c.last.Header.Get("Authorization"), contract.HeaderClientID: "psp-alpha"}
		expect(t, call(t, http.DefaultTransport, http.MethodGet, f.srv.URL+"/v1/accounts/a@b", "", auth), 401, ReasonReplayed)
	})
	t.Run("a captured token on another path, body, key or client", func(t *testing.T) {
		c := &capture{}
		h := map[string]string{contract.HeaderClientID: "psp-alpha", contract.HeaderIdempotencyKey: "k1"}
		call(t, gatewayTo(CommandService, c), http.MethodPost, f.srv.URL+"/v1/payments", `{"amount_paise":1}`, h)
		tok := c.last.Header.Get("Authorization")
		for _, tc := range []struct{ path, body, key, client string }{
			{"/v1/accounts", `{"amount_paise":1}`, "k1", "psp-alpha"},
			{"/v1/payments", `{"amount_paise":100000}`, "k1", "psp-alpha"},
			{"/v1/payments", `{"amount_paise":1}`, "k2", "psp-alpha"},
		} {
			resp := call(t, http.DefaultTransport, http.MethodPost, f.srv.URL+tc.path, tc.body,
				map[string]string{"Authorization": tok, contract.HeaderIdempotencyKey: tc.key, contract.HeaderClientID: tc.client})
			expect(t, resp, 401, ReasonMismatch)
		}
		// The same token with another X-Client-ID is the token's client, never the header's.
		c2 := &capture{}
		call(t, gatewayTo(CommandService, c2), http.MethodGet, f.srv.URL+"/v1/accounts/a@b", "", client)
		f2 := newFixture(t) // a fresh replica: it has not seen the token's id
		resp := call(t, http.DefaultTransport, http.MethodGet, f2.srv.URL+"/v1/accounts/a@b", "",
			map[string]string{"Authorization": c2.last.Header.Get("Authorization"), contract.HeaderClientID: "psp-beta"})
		if resp.StatusCode != 200 || resp.Header.Get("X-Seen-Client") != "psp-alpha" {
			t.Fatalf("client from header: %d %q", resp.StatusCode, resp.Header.Get("X-Seen-Client"))
		}
	})
}

func TestOperatorIsTakenFromTheTokenOnly(t *testing.T) {
	f := newFixture(t)
	h := RequireOperator(echo)
	srv := httptest.NewServer(f.verifier.Middleware(h))
	defer srv.Close()
	// A client's call with a forged X-Operator-ID header: the token names no operator, so 403.
	resp := call(t, gatewayTo(CommandService, addOperator{}), http.MethodGet, srv.URL+"/v1/ops/x", "",
		map[string]string{contract.HeaderClientID: "psp-alpha"})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("forged operator header = %d", resp.StatusCode)
	}
	resp = call(t, gatewayTo(CommandService, nil), http.MethodGet, srv.URL+"/v1/ops/x", "", map[string]string{HeaderOperatorID: "ops-1"})
	if resp.StatusCode != 200 || resp.Header.Get("X-Seen-Operator") != "ops-1" || resp.Header.Get("X-Seen-Client") != "" {
		t.Fatalf("operator call = %d %q %q", resp.StatusCode, resp.Header.Get("X-Seen-Operator"), resp.Header.Get("X-Seen-Client"))
	}
}

// addOperator adds an X-Operator-ID header after the token was made without one: a header outside the
// token, as a man in the middle would.
type addOperator struct{}

func (addOperator) RoundTrip(r *http.Request) (*http.Response, error) {
	r.Header.Set(HeaderOperatorID, "root")
	return http.DefaultTransport.RoundTrip(r)
}

func TestDerivedKeysMatchOpenSSL(t *testing.T) {
	// printf 'upi-service-token/v1 command-service' | openssl dgst -sha256 -hmac 'root-secret'
	if got := DeriveKey("root-secret", CommandService); got != opensslVector {
		t.Fatalf("DeriveKey = %s, want %s", got, opensslVector)
	}
}

// opensslVector is what openssl computed for DeriveKey("root-secret", "command-service").
const opensslVector = "71bb8f4d04a12b1ff005e4792596b794a75a1342f772881e10e980330ee9ac5a"

func BenchmarkSignAndVerify(b *testing.B) {
	v := NewVerifier(VerifierConfig{Audience: CommandService, Peers: DevPeers(CommandService, Gateway),
		Rules: []Rule{{Prefix: "/v1/", Callers: []string{Gateway}}}})
	h := v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	tr := NewSigner(Gateway, DevRoot(Gateway)).Transport(CommandService, nil).(*transport)
	body := []byte(`{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":12500,"note":"lunch"}`)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/payments", bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.Header.Set(contract.HeaderClientID, "psp-alpha")
		req.Header.Set(contract.HeaderIdempotencyKey, "k")
		tok, err := tr.token(req, CommandService)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body)
		}
	}
}

// A request the service makes to itself for a caller an enclosing request was authenticated for (Vouch)
// passes without a token, as that caller's: its client set from the caller whatever the header said, and
// only on the routes the caller may call. The same request from outside, without the vouching context,
// needs its own token.
func TestVouchedRequestPassesAsItsCaller(t *testing.T) {
	f := newFixture(t)
	h := f.verifier.Middleware(echo)
	serve := func(vouched bool, path string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{}`))
		r.Header.Set(contract.HeaderClientID, "someone-else")
		if vouched {
			r = r.WithContext(Vouch(r.Context(), Caller{Service: Gateway, Client: "psp-alpha"}))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := serve(true, "/v1/payments"); w.Code != http.StatusOK || w.Header().Get("X-Seen-Client") != "psp-alpha" {
		t.Fatalf("vouched = %d, client %q; want 200 as psp-alpha", w.Code, w.Header().Get("X-Seen-Client"))
	}
	if w := serve(true, "/internal/steps"); w.Code != http.StatusForbidden {
		t.Fatalf("vouched gateway on a workflow route = %d, want 403", w.Code)
	}
	if w := serve(false, "/v1/payments"); w.Code != http.StatusUnauthorized {
		t.Fatalf("not vouched, no token = %d, want 401", w.Code)
	}
}
