package events

import (
	"strings"
	"testing"
)

// Each registered decoder yields the payload type its name says, so a registry entry cannot point at the
// wrong struct; refund and collect events carry their terms.
func TestDecodersYieldTheirOwnType(t *testing.T) {
	for name := range decoders {
		p, err := Decode(name, []byte(`{}`))
		if err != nil {
			t.Fatalf("Decode(%s, {}): %v", name, err)
		}
		if p.EventType() != name {
			t.Errorf("Decode(%s) = a %T, whose type is %s", name, p, p.EventType())
		}
		if _, ok := Refund(p); ok != strings.HasPrefix(name, "Refund") {
			t.Errorf("Refund(%T) says %v", p, ok)
		}
		if _, ok := Collect(p); ok != strings.HasPrefix(name, "Collect") {
			t.Errorf("Collect(%T) says %v", p, ok)
		}
	}
}

func TestDecodeRefusesUnknownTypesAndBadPayloads(t *testing.T) {
	if _, err := Decode("Nonsense", []byte(`{}`)); err == nil || !strings.Contains(err.Error(), `unknown event type "Nonsense"`) {
		t.Errorf("Decode of an unknown type: %v", err)
	}
	if _, err := Decode(AccountOpened, []byte(`{"vpa": 1}`)); err == nil || !strings.HasPrefix(err.Error(), "decode AccountOpened payload: ") {
		t.Errorf("Decode of a bad payload: %v", err)
	}
}

func TestDecodeReturnsValuesWithTheirTerms(t *testing.T) {
	p, err := Decode(RefundCredited, []byte(`{"refund_id":"r1","payment_id":"p1","vpa":"a@b"}`))
	if err != nil {
		t.Fatal(err)
	}
	credited, ok := p.(RefundCreditedV1)
	if !ok || credited.VPA != "a@b" {
		t.Fatalf("Decode(RefundCredited) = %#v", p)
	}
	if terms, ok := Refund(p); !ok || terms.RefundID != "r1" || terms.PaymentID != "p1" {
		t.Errorf("Refund(%#v) = %+v, %v", p, terms, ok)
	}
	if _, ok := Collect(p); ok {
		t.Error("a refund event is not a collect event")
	}
	p, err = Decode(CollectExpired, []byte(`{"collect_id":"c1","expires_at":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if terms, ok := Collect(p); !ok || terms.CollectID != "c1" {
		t.Errorf("Collect(%#v) = %+v, %v", p, terms, ok)
	}
	if _, ok := Refund(PaymentCompletedV1{}); ok {
		t.Error("a payment event is not a refund event")
	}
}
