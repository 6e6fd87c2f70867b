package contract

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"upi/shared/problem"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name, body, ct string
		status         int
		code           string
	}{
		{"ok", `{"vpa":"a@b","holder_name":"A"}`, "application/json", 0, ""},
		{"ok charset", `{"vpa":"a@b","holder_name":"A"}`, "application/json; charset=utf-8", 0, ""},
		{"unknown field", `{"vpa":"a@b","holder_name":"A","x":1}`, "application/json", 400, problem.CodeValidation},
		{"wrong type", `{"vpa":1}`, "application/json", 400, problem.CodeValidation},
		{"malformed", `{"vpa":`, "application/json", 400, problem.CodeMalformedJSON},
		{"empty", ``, "application/json", 400, problem.CodeMalformedJSON},
		{"array", `[1]`, "application/json", 400, problem.CodeMalformedJSON},
		{"trailing", `{"vpa":"a@b"} {}`, "application/json", 400, problem.CodeMalformedJSON},
		{"too large", `{"vpa":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, "application/json", 413, problem.CodeBodyTooLarge},
		{"text", `{}`, "text/plain", 415, problem.CodeUnsupportedMediaType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			r.Header.Set("Content-Type", tc.ct)
			var req OpenAccountRequest
			p := Decode(httptest.NewRecorder(), r, &req)
			if tc.status == 0 {
				if p != nil {
					t.Fatalf("Decode = %v, want ok", p)
				}
				return
			}
			if p == nil || p.Status != tc.status || p.Code != tc.code {
				t.Fatalf("Decode = %+v, want %d %s", p, tc.status, tc.code)
			}
		})
	}
}

func TestPaymentValidate(t *testing.T) {
	l := Limits{PaymentMaxPaise: 1000, DepositMaxPaise: 5000}
	if _, p := (PaymentRequest{PayerVPA: "A@Bank", PayeeVPA: "b@bank", AmountPaise: 1000}).Validate(l); p != nil {
		t.Fatalf("valid payment refused: %v", p.Errors)
	}
	for _, r := range []PaymentRequest{
		{PayerVPA: "a@bank", PayeeVPA: "A@BANK", AmountPaise: 10},
		{PayerVPA: "a@bank", PayeeVPA: "b@bank", AmountPaise: 1001},
		{PayerVPA: "a@bank", PayeeVPA: "b@bank", AmountPaise: 0},
		{PayerVPA: "a@bank", PayeeVPA: "b@bank", AmountPaise: 10, Note: strings.Repeat("n", 101)},
		{PayerVPA: "bad", PayeeVPA: "b@bank", AmountPaise: 10},
	} {
		if _, p := r.Validate(l); p == nil || p.Code != problem.CodeValidation {
			t.Errorf("%+v accepted", r)
		}
	}
}
