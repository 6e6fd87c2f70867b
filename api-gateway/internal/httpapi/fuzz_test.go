package httpapi_test

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
)

// FuzzRequestValidation sends arbitrary bodies, path parameters, query strings, content types and keys
// through the real router. Whatever arrives, the gateway never answers 500 and never panics, and every
// 4xx is a problem+json with a code. The service behind it is a stub that accepts whatever reaches it:
// what is under test is what the gateway lets through and how it refuses the rest.
func FuzzRequestValidation(f *testing.F) {
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusCreated, map[string]string{"ok": "true"})
	}))
	f.Cleanup(stub.Close)
	g := newGateway(f, options{commandURL: stub.URL, queryURL: stub.URL})

	seeds := []struct {
		route              uint8
		param, query, body string
		ct, key            string
	}{
		{0, "", "", validAccount, "application/json", "k1"},
		{1, "alice@okbank", "", validDeposit, "application/json", "k2"},
		{2, "", "", validPayment, "application/json; charset=utf-8", "k3"},
		{2, "", "", `{"payer_vpa":"a@b","payee_vpa":"c@d","amount_paise":1e3}`, "application/json", "k4"},
		{2, "", "", `{"payer_vpa":"a@b","payee_vpa":"c@d","amount_paise":9223372036854775808}`, "application/json", "k5"},
		{0, "", "", `{"vpa":"a@b","holder_name":"\u0000"}`, "application/json", "k6"},
		{0, "", "", `{"vpa":"a@b","holder_name":"A","vpa":"c@d"}`, "application/json", "k7"},
		{0, "", "", "\xff\xfe", "", "k8"},
		{1, "A@B", "", `{"amount_paise":null,"reference":null}`, "application/json", "k9"},
		{0, "", "", `{}`, "application/json;;", "k10"},
		{3, "alice@okbank", "min_position=AAAAAAAAAAcAAAAAAAAACQ", "", "", ""},
		{4, "alice@okbank", "min_position=%zz", "", "", ""},
		{5, "alice@okbank", "limit=5&cursor=abc&limit=7", "", "", ""},
		{6, paymentID, "wait=30s&min_position=", "", "", ""},
		{6, paymentID, "wait=99999999999999999999h", "", "", ""},
		{7, "../../x", "", "", "", ""},
		{3, strings.Repeat("a", 300) + "@b", "", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.route, s.param, s.query, []byte(s.body), s.ct, s.key)
	}
	f.Fuzz(func(t *testing.T, route uint8, param, query string, body []byte, ct, key string) {
		method, path := http.MethodPost, ""
		switch route % 8 {
		case 0:
			path = "/v1/accounts"
		case 1:
			path = "/v1/accounts/" + param + "/deposits"
		case 2:
			path = "/v1/payments"
		case 3:
			method, path = http.MethodGet, "/v1/accounts/"+param
		case 4:
			method, path = http.MethodGet, "/v1/accounts/"+param+"/balance"
		case 5:
			method, path = http.MethodGet, "/v1/accounts/"+param+"/transactions"
		case 6:
			method, path = http.MethodGet, "/v1/payments/"+param
		case 7:
			method, path = http.MethodGet, "/v1/payments/"+param+"/events"
		}
		r := httptest.NewRequest(method, "/", bytes.NewReader(body))
		r.URL.Path, r.URL.RawPath, r.URL.RawQuery = path, "", query
		r.Header.Set("Authorization", "Bearer "+alphaKey)
		if ct != "" {
			r.Header["Content-Type"] = []string{ct}
		}
		if key != "" {
			r.Header[contract.HeaderIdempotencyKey] = []string{key}
		}
		w := httptest.NewRecorder()
		g.router.ServeHTTP(w, r)

		if w.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", method, path, body, w.Code, w.Body)
		}
		if w.Code < 400 {
			if w.Code != http.StatusCreated {
				t.Fatalf("%s %s: %d is neither the service's answer nor a refusal", method, path, w.Code)
			}
			return
		}
		if mt, _, _ := mime.ParseMediaType(w.Header().Get("Content-Type")); mt != problem.ContentType {
			t.Fatalf("%s %s: %d with Content-Type %q", method, path, w.Code, w.Header().Get("Content-Type"))
		}
		var p problem.Problem
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Code == "" || p.Status != w.Code {
			t.Fatalf("%s %s: bad problem %d %s", method, path, w.Code, w.Body)
		}
	})
}
