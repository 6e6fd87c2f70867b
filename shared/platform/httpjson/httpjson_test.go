package httpjson

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"upi/shared/contract"
	"upi/shared/contract/problem"
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
		{"too large", `{"vpa":"` + strings.Repeat("a", contract.MaxBodyBytes) + `"}`, "application/json", 413, problem.CodeBodyTooLarge},
		{"text", `{}`, "text/plain", 415, problem.CodeUnsupportedMediaType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			r.Header.Set("Content-Type", tc.ct)
			var req contract.OpenAccountRequest
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
