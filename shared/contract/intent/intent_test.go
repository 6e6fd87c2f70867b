package intent

import (
	"errors"
	"testing"
)

func TestParseRoundTrip(t *testing.T) {
	in, err := Parse("upi://pay?pa=shop@okbank&pn=The%20Shop&mc=5411&tr=ORDER-1&tn=Order%201&am=125.50&cu=INR")
	if err != nil {
		t.Fatal(err)
	}
	if in.PayeeVPA.String() != "shop@okbank" || in.AmountPaise != 12550 || in.Ref != "ORDER-1" || in.Name != "The Shop" || in.Note != "Order 1" {
		t.Fatalf("parsed %+v", in)
	}
	again, err := Parse(in.String())
	if err != nil || again != in {
		t.Fatalf("round trip: %+v %v (from %s)", again, err, in.String())
	}
}

func TestParseRefusals(t *testing.T) {
	for s, param := range map[string]string{
		"http://pay?pa=a@b":                       "intent",
		"upi://collect?pa=shop@okbank":            "intent",
		"upi://pay?pn=x":                          "pa",
		"upi://pay?pa=not-a-vpa":                  "pa",
		"upi://pay?pa=shop@okbank&cu=USD":         "cu",
		"upi://pay?pa=shop@okbank&am=-1":          "am",
		"upi://pay?pa=shop@okbank&am=1.234":       "am",
		"upi://pay?pa=shop@okbank&am=0":           "am",
		"upi://pay?pa=shop@okbank&am=1e3":         "am",
		"upi://pay?pa=shop@okbank&mam=abc":        "mam",
		"upi://pay?pa=shop@okbank&am=1&am=2":      "am",
		"upi://pay?pa=shop@okbank&zz=1":           "zz",
		"upi://pay?pa=shop@okbank&mc=54":          "mc",
		"upi://pay?pa=shop@okbank&tr=has%20space": "tr",
	} {
		_, err := Parse(s)
		var pe *Error
		if !errors.As(err, &pe) || pe.Param != param || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want an error naming %s", s, err, param)
		}
	}
}
