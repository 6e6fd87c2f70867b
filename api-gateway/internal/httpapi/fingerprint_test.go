package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"upi/api-gateway/internal/app"
	"upi/shared/contract"
	"upi/shared/platform/httpjson"
)

// legacyFingerprint is how gateways before the typed fingerprints computed one: the raw body decoded,
// re-encoded with sorted keys (numbers keeping their literal text) and hashed. Records they stored in
// Redis hold such fingerprints; the typed ones must match them for the same requests.
func legacyFingerprint(body []byte) string {
	canonical := body
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err == nil {
		if b, err := json.Marshal(v); err == nil {
			canonical = b
		}
	}
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}

// decodeStrict decodes body as the gateway does (contract.Decode), into v.
func decodeStrict(body []byte, v any) bool {
	r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return httpjson.Decode(httptest.NewRecorder(), r, v) == nil
}

// fingerprintOf decodes body strictly into the request type of a route and returns its fingerprint.
func fingerprintOf(t *testing.T, name string, body string) (string, bool) {
	t.Helper()
	switch name {
	case "account":
		return decodedFingerprint[contract.OpenAccountRequest](body)
	case "deposit":
		return decodedFingerprint[contract.DepositRequest](body)
	case "payment":
		return decodedFingerprint[contract.PaymentRequest](body)
	case "collect":
		return decodedFingerprint[contract.CollectRequestBody](body)
	}
	t.Fatalf("no route %s", name)
	return "", false
}

// decodedFingerprint is the fingerprint a command's validator (body) gives a body it decodes as a T.
func decodedFingerprint[T any](body string) (string, bool) {
	var req T
	if !decodeStrict([]byte(body), &req) {
		return "", false
	}
	return app.NewFingerprinter[T]().Of(&req), true
}

func TestFingerprints(t *testing.T) {
	for _, tc := range []struct {
		route, body string
		same        []string // the same JSON meaning
		different   []string
	}{
		{"account", `{"vpa":"alice@okbank","holder_name":"Alice"}`,
			[]string{`{"holder_name":"Alice","vpa":"alice@okbank"}`, "{\n  \"vpa\" : \"alice@okbank\",\t\"holder_name\": \"\\u0041lice\"\n}"},
			[]string{`{"vpa":"alice@okbank","holder_name":"Alicia"}`, `{"vpa":"Alice@okbank","holder_name":"Alice"}`, `{"vpa":"alice@okbank"}`,
				`{"vpa":"alice@okbank","holder_name":"Alice "}`}},
		{"deposit", `{"amount_paise":50000,"reference":"neft-1"}`,
			[]string{`{"reference":"neft-1","amount_paise":50000}`, `{ "amount_paise" : 50000 , "reference" : "neft-1" }`},
			[]string{`{"amount_paise":50001,"reference":"neft-1"}`, `{"amount_paise":50000,"reference":"neft-2"}`, `{"amount_paise":50000}`}},
		{"payment", `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":12500,"note":"<lunch> & \"tea\" ☕"}`,
			[]string{`{"note":"<lunch> & \"tea\" ☕","amount_paise":12500,"payee_vpa":"bob@okbank","payer_vpa":"alice@okbank"}`,
				`{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":12500,"note":"\u003clunch\u003e \u0026 \"tea\" \u2615"}`},
			[]string{`{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":12500}`,
				`{"payer_vpa":"bob@okbank","payee_vpa":"alice@okbank","amount_paise":12500,"note":"<lunch> & \"tea\" ☕"}`,
				`{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":1250,"note":"<lunch> & \"tea\" ☕"}`}},
	} {
		t.Run(tc.route, func(t *testing.T) {
			fp, ok := fingerprintOf(t, tc.route, tc.body)
			if !ok {
				t.Fatalf("%s refused", tc.body)
			}
			// Byte for byte the form earlier gateways stored, so their records still match.
			if want := legacyFingerprint([]byte(tc.body)); fp != want {
				t.Errorf("%s: fingerprint differs from the raw body's canonical form", tc.body)
			}
			for _, s := range tc.same {
				if got, ok := fingerprintOf(t, tc.route, s); !ok || got != fp {
					t.Errorf("%s: fingerprint differs from the same meaning", s)
				}
			}
			for _, d := range tc.different {
				if got, ok := fingerprintOf(t, tc.route, d); !ok || got == fp {
					t.Errorf("%s: same fingerprint as a different body", d)
				}
			}
		})
	}
	// Sent empty, null, or not sent at all: one request to the services, one fingerprint.
	a, _ := fingerprintOf(t, "payment", `{"payer_vpa":"a@b","payee_vpa":"c@d","amount_paise":1}`)
	for _, same := range []string{
		`{"payer_vpa":"a@b","payee_vpa":"c@d","amount_paise":1,"note":""}`,
		`{"payer_vpa":"a@b","payee_vpa":"c@d","amount_paise":1,"note":null}`,
	} {
		if got, _ := fingerprintOf(t, "payment", same); got != a {
			t.Errorf("%s: fingerprint differs from the request without a note", same)
		}
	}
}

// TestFingerprintsCoverEveryField: every field of a command's request is in its fingerprint, a field added
// to a request in shared/contract too (or two requests differing only in it would replay each other's
// answers); a field of a kind the fingerprint cannot write fails here.
func TestFingerprintsCoverEveryField(t *testing.T) {
	for _, tc := range []struct {
		route string
		req   any
	}{
		{"account", &contract.OpenAccountRequest{}},
		{"deposit", &contract.DepositRequest{}},
		{"payment", &contract.PaymentRequest{}},
		{"collect", &contract.CollectRequestBody{}},
	} {
		v := reflect.ValueOf(tc.req).Elem()
		for i := range v.NumField() {
			switch f := v.Field(i); f.Kind() {
			case reflect.String:
				f.SetString("value-" + strings.ToLower(v.Type().Field(i).Name) + "@x")
			case reflect.Int, reflect.Int64:
				f.SetInt(int64(100 + i))
			default:
				t.Fatalf("%s: field %s of kind %s: teach this test and the fingerprint about it", tc.route, v.Type().Field(i).Name, f.Kind())
			}
		}
		body, err := json.Marshal(tc.req)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := fingerprintOf(t, tc.route, string(body))
		if !ok || got != legacyFingerprint(body) {
			t.Errorf("%s: the fingerprint leaves out a field of %s", tc.route, body)
		}
	}
}

// FuzzFingerprints: for any body the strict decoder accepts, the fingerprint is that of the body's
// canonical form whenever the body spells its keys as documented and has no null or empty values (so
// stored fingerprints keep matching), and it never depends on key order or whitespace.
func FuzzFingerprints(f *testing.F) {
	for _, s := range []struct {
		route uint8
		body  string
	}{
		{0, `{"vpa":"alice@okbank","holder_name":"Alice"}`},
		{1, `{"amount_paise":50000,"reference":"neft-1"}`},
		{2, `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":12500,"note":"lunch"}`},
		{2, `{"payer_vpa":"a@b","payee_vpa":"c@d","amount_paise":-0,"note":"\u2028<&>"}`},
		{2, `{"Payer_VPA":"a@b","payee_vpa":null,"amount_paise":1,"note":""}`},
		{0, `{"vpa":"a@b","holder_name":"A","vpa":"c@d"}`},
		{0, `{"vpa":"\ud800","holder_name":"\xff"}`},
	} {
		f.Add(s.route, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		name := []string{"account", "deposit", "payment"}[route%3]
		fp, ok := fingerprintOf(t, name, string(body))
		if !ok {
			return
		}
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if dec.Decode(&m) != nil {
			t.Fatalf("the strict decoder took %q, the lenient one did not", body)
		}
		if m == nil {
			return // the body null, which decodes to an empty request that validation refuses
		}
		// Any key order and spacing: re-encoded sorted and indented, the same fingerprint.
		indented, _ := json.MarshalIndent(m, " ", "\t")
		if again, ok := fingerprintOf(t, name, string(indented)); !ok || again != fp {
			t.Fatalf("%q: re-encoded as %s, fingerprint %v %s, want %s", body, indented, ok, again, fp)
		}
		tags := map[string]bool{}
		for _, z := range []any{contract.OpenAccountRequest{}, contract.DepositRequest{}, contract.PaymentRequest{}} {
			ty := reflect.TypeOf(z)
			for i := range ty.NumField() {
				tags[strings.Split(ty.Field(i).Tag.Get("json"), ",")[0]] = true
			}
		}
		for k, v := range m {
			if !tags[k] || v == nil || v == "" || v == json.Number("0") || v == json.Number("-0") {
				return
			}
		}
		if want := legacyFingerprint(body); fp != want {
			t.Fatalf("%q: fingerprint %s, the body's canonical form %s", body, fp, want)
		}
	})
}
