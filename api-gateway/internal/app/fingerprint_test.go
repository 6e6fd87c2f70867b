package app_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"

	"upi/api-gateway/internal/app"
)

// canonicalOf is the fingerprint earlier gateways computed: the body decoded and re-encoded by
// encoding/json with sorted keys.
func canonicalOf(t *testing.T, fields map[string]any) string {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// note is a request whose fields are declared out of their keys' order.
type note struct {
	PayeeVPA    string `json:"payee_vpa"`
	Note        string `json:"note,omitempty"`
	AmountPaise int64  `json:"amount_paise"`
}

func TestFingerprintIsSortedJSON(t *testing.T) {
	fp := app.NewFingerprinter[note]()
	for _, s := range []string{
		"alice@okbank", "Alice", `say "hi"`, `back\\slash`, "<b>&amp;</b>", "नमस्ते", "tab\there", "line\u2028sep",
		"\x7f", "bad \xff utf-8", "emoji 🙂", "",
	} {
		want := map[string]any{"amount_paise": 12500, "payee_vpa": "bob@okbank"}
		if s != "" {
			want["note"] = s
		}
		if got := fp.Of(&note{PayeeVPA: "bob@okbank", Note: s, AmountPaise: 12500}); got != canonicalOf(t, want) {
			t.Errorf("note %q: fingerprint differs from encoding/json's canonical form", s)
		}
	}
	if app.NewFingerprinter[struct{}]().Of(&struct{}{}) != canonicalOf(t, map[string]any{}) {
		t.Errorf("empty request: fingerprint differs from {}")
	}
	if fp.Of(&note{}) != canonicalOf(t, map[string]any{}) {
		t.Errorf("request of zero values: fingerprint differs from {}")
	}
	// Zero values are left out: sent empty or not sent is one request to the services.
	if fp.Of(&note{PayeeVPA: "r", AmountPaise: 0}) != canonicalOf(t, map[string]any{"payee_vpa": "r"}) {
		t.Errorf("a zero field changed the fingerprint")
	}
	// Values do not run into each other.
	type pair struct {
		A string `json:"a"`
		C string `json:"c"`
	}
	pf := app.NewFingerprinter[pair]()
	if pf.Of(&pair{A: "b,c"}) == pf.Of(&pair{A: "b"}) {
		t.Errorf("different requests share a fingerprint")
	}
}

func TestFingerprinterRefusesFieldsItCannotWrite(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a request with a float field got a fingerprinter")
		}
	}()
	app.NewFingerprinter[struct {
		Amount float64 `json:"amount"`
	}]()
}
