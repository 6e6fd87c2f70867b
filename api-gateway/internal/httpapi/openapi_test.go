package httpapi_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"upi/api-gateway/internal/apispec"
	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/testenv"
)

// TestRoutesMatchTheSpec: every route the router serves is in docs/openapi.yaml, and every operation
// there is served.
func TestRoutesMatchTheSpec(t *testing.T) {
	g := newGateway(t, options{})
	s := loadSpec(t)
	var served []string
	err := chi.Walk(g.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		route = strings.TrimSuffix(route, "/")
		if route == "/metrics" && method != http.MethodGet {
			return nil // promhttp is mounted for every method; only GET is part of the contract
		}
		served = append(served, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(served)
	served = slices.Compact(served)
	documented := s.Routes()
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("served but not in openapi.yaml: %s", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("in openapi.yaml but not served: %s", r)
		}
	}
	if len(served) < 11 {
		t.Fatalf("walked only %d routes: %v", len(served), served)
	}
}

// internalCodes are codes of shared/contract/problem that no public answer carries, with the reason.
var internalCodes = map[string]string{
	"STEP_PRECONDITION":  "answered only by the command service's internal workflow routes",
	"PAYMENT_TERMINAL":   "answered only by the command service's internal workflow routes",
	"INSUFFICIENT_FUNDS": "a payment's failure_code (FailureCode schema), reached asynchronously, never an HTTP error",
}

// TestErrorCodesAreDocumented: every code of shared/contract/problem is in the ErrorCode enum (or internal, with a
// reason); every code a response lists is in the enum; and every code the gateway's own code names is
// listed for some response.
func TestErrorCodesAreDocumented(t *testing.T) {
	s := loadSpec(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	enum := s.Enum("ErrorCode")
	shared := stringConstants(t, filepath.Join(root, "shared", "contract", "problem"), "Code")
	if len(shared) < 15 {
		t.Fatalf("found only %d codes in shared/contract/problem: %v", len(shared), shared)
	}
	for _, code := range shared {
		if _, internal := internalCodes[code]; internal {
			if slices.Contains(enum, code) {
				t.Errorf("%s is marked internal but is in the ErrorCode enum", code)
			}
			continue
		}
		if !slices.Contains(enum, code) {
			t.Errorf("shared/contract/problem code %s is not in the ErrorCode enum", code)
		}
	}
	if !slices.Contains(s.Enum("FailureCode"), "INSUFFICIENT_FUNDS") {
		t.Errorf("INSUFFICIENT_FUNDS is not a documented FailureCode")
	}
	listed := s.AllCodes()
	for _, code := range listed {
		if !slices.Contains(enum, code) {
			t.Errorf("x-codes lists %s, which is not in the ErrorCode enum", code)
		}
	}
	for _, code := range enum {
		if !slices.Contains(listed, code) {
			t.Errorf("ErrorCode %s is not listed for any response", code)
		}
	}
	// The codes the gateway's own source names: each must be documented for some response.
	used := problemCodesUsed(t, filepath.Join(root, "api-gateway"))
	for _, name := range used {
		code := constValue(t, root, name)
		if !slices.Contains(listed, code) {
			t.Errorf("the gateway answers %s (problem.%s), which no response documents", code, name)
		}
	}
}

// TestEveryRouteDocumentsTheGatewaysErrors: the answers the gateway itself gives on each route, whatever
// the services do, are documented on that route.
func TestEveryRouteDocumentsTheGatewaysErrors(t *testing.T) {
	s := loadSpec(t)
	common := map[int][]string{
		401: {"UNAUTHENTICATED"}, 429: {"RATE_LIMITED"}, 500: {"INTERNAL"},
		503: {"DEPENDENCY_UNAVAILABLE"}, 504: {"UPSTREAM_TIMEOUT"}, 400: {"VALIDATION"},
	}
	post := map[int][]string{
		400: {"MALFORMED_JSON", "IDEMPOTENCY_KEY_REQUIRED"}, 409: {"IDEMPOTENCY_KEY_IN_USE"},
		413: {"BODY_TOO_LARGE"}, 415: {"UNSUPPORTED_MEDIA_TYPE"}, 422: {"IDEMPOTENCY_KEY_REUSED"},
	}
	for _, route := range s.Routes() {
		method, path, _ := strings.Cut(route, " ")
		if !strings.HasPrefix(path, "/v1/") {
			continue
		}
		want := []map[int][]string{common}
		if method == http.MethodPost {
			want = append(want, post)
		}
		for _, m := range want {
			for status, codes := range m {
				got, ok := s.Codes(method, path, status)
				for _, c := range codes {
					if !ok || !slices.Contains(got, c) {
						t.Errorf("%s: %d %s is not documented", route, status, c)
					}
				}
			}
		}
	}
}

// stringConstants lists the values of the string constants named prefix* in the package in dir.
func stringConstants(t *testing.T, dir, prefix string) []string {
	t.Helper()
	var out []string
	for _, v := range constants(t, dir) {
		if strings.HasPrefix(v[0], prefix) {
			out = append(out, v[1])
		}
	}
	return out
}

func constValue(t *testing.T, root, name string) string {
	t.Helper()
	for _, v := range constants(t, filepath.Join(root, "shared", "contract", "problem")) {
		if v[0] == name {
			return v[1]
		}
	}
	t.Fatalf("no constant %s in shared/contract/problem", name)
	return ""
}

func constants(t *testing.T, dir string) [][2]string {
	t.Helper()
	fset := token.NewFileSet()
	var out [][2]string
	matches, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, path := range matches {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range vs.Names {
				if i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						out = append(out, [2]string{name.Name, v})
					}
				}
			}
			return true
		})
	}
	return out
}

// problemCodesUsed lists the problem.Code* identifiers named by the non-test Go files under dir.
func problemCodesUsed(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "problem" && strings.HasPrefix(sel.Sel.Name, "Code") {
					if !slices.Contains(out, sel.Sel.Name) {
						out = append(out, sel.Sel.Name)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 8 {
		t.Fatalf("found only %d problem codes in the gateway: %v", len(out), out)
	}
	return out
}

// TestSchemasMatchTheContract: every resource and request the spec describes has exactly the JSON fields
// of its type in shared/contract, so a field added to a response (upi_txn_id, rrn, npci_code, type, mcc,
// ...) cannot go undocumented, nor a documented one go missing.
func TestSchemasMatchTheContract(t *testing.T) {
	s, err := apispec.Load()
	if err != nil {
		t.Fatal(err)
	}
	for schema, v := range map[string]any{
		"Account": contract.Account{}, "Balance": contract.Balance{}, "Deposit": contract.Deposit{},
		"Payment": contract.Payment{}, "PaymentList": contract.PaymentList{}, "VPALookup": contract.VPALookup{},
		"Transaction": contract.Transaction{}, "TransactionPage": contract.TransactionPage{},
		"PaymentEvent": contract.PaymentEvent{}, "PaymentEventPage": contract.PaymentEventPage{},
		"OpenAccountRequest": contract.OpenAccountRequest{}, "DepositRequest": contract.DepositRequest{},
		"PaymentRequest": contract.PaymentRequest{},
		"CollectRequest": contract.CollectRequestBody{}, "Collect": contract.Collect{}, "CollectPage": contract.CollectPage{},
		"WithdrawalRequest": contract.WithdrawalRequest{}, "Withdrawal": contract.Withdrawal{},
		"SettlementAccount": contract.SettlementAccount{}, "SettlementAccountList": contract.SettlementAccountList{},
	} {
		documented, ok := s.Properties(schema)
		if !ok {
			t.Errorf("schema %s is not in the spec", schema)
			continue
		}
		if fields := jsonFields(reflect.TypeOf(v)); !slices.Equal(documented, fields) {
			t.Errorf("schema %s documents %v; %T has %v", schema, documented, v, fields)
		}
	}
}

// TestFailureCodesAndNPCICodesAreDocumented: the FailureCode enum is exactly the codes a payment can fail
// with, and NPCICode exactly their NPCI codes.
func TestFailureCodesAndNPCICodesAreDocumented(t *testing.T) {
	s, err := apispec.Load()
	if err != nil {
		t.Fatal(err)
	}
	codes := []string{events.CodeInsufficientFunds, events.CodePayeeUnavailable, events.CodeProcessingError,
		events.CodeDailyLimitExceeded, events.CodeCountLimitExceeded, events.CodeNewAccountLimitExceeded,
		events.CodeAccountClosed}
	var npci []string
	for _, c := range codes {
		n := events.NPCICode(c)
		if n == "" {
			t.Errorf("failure code %s has no NPCI code", c)
		}
		npci = append(npci, n)
	}
	slices.Sort(codes)
	slices.Sort(npci)
	if got := slices.Sorted(slices.Values(s.Enum("FailureCode"))); !slices.Equal(got, codes) {
		t.Errorf("FailureCode enum = %v, want %v", got, codes)
	}
	if got := slices.Sorted(slices.Values(s.Enum("NPCICode"))); !slices.Equal(got, npci) {
		t.Errorf("NPCICode enum = %v, want %v", got, npci)
	}
}

// jsonFields are the JSON names of a struct's fields, sorted.
func jsonFields(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
