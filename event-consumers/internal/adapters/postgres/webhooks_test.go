package postgres_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"upi/event-consumers/internal/adapters/postgres"
	"upi/shared/platform/pii"
	"upi/testenv"
)

// The sender opens a delivery's sealed fields where they stand: the receiver reads what the general,
// decoding way gives (the plaintext, "[erased]" for an erased person, other strings untouched, even one
// that looks like a sealed value inside), and the body keeps its field order.
func TestWebhookBodiesOpenLikeTheLog(t *testing.T) {
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	ring := pii.NewKeyring(pool, 0)
	keys, err := ring.Ensure(ctx, "alice@okbank", "bob@okbank", "carol@okbank")
	if err != nil {
		t.Fatal(err)
	}
	key := func(s string) pii.Key { return pii.Key{Subject: s, Bytes: keys[s]} }
	note, _ := pii.Seal("lunch \"at\" <Joe's> ₹", key("alice@okbank"), key("bob@okbank"))
	reason, _ := pii.Seal("wrong item", key("carol@okbank"))
	if err := ring.Erase(ctx, "carol@okbank"); err != nil {
		t.Fatal(err)
	}
	bodies := []string{
		`{"id":"1","data":{"note":"` + note + `","amount_paise":500,"reason":"` + reason + `"}}`,
		`{"id":"2","data":{"note":"plain \"` + pii.Prefix + `x\" text","z":1}}`,
		`{"id":"3","data":{"note":"","z":[1,2]}}`,
	}
	fast, general := make([]*json.RawMessage, len(bodies)), make([]*json.RawMessage, len(bodies))
	for i, b := range bodies {
		f, g := json.RawMessage(b), json.RawMessage(b)
		fast[i], general[i] = &f, &g
	}
	if err := postgres.NewWebhooks(pool).Open(ctx, fast); err != nil {
		t.Fatal(err)
	}
	if err := pii.OpenFields(ctx, pool, pii.Fields{JSON: general}); err != nil {
		t.Fatal(err)
	}
	for i := range bodies {
		var a, b any
		if err := json.Unmarshal(*fast[i], &a); err != nil {
			t.Fatalf("body %d: %v: %s", i, err, *fast[i])
		}
		if err := json.Unmarshal(*general[i], &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("body %d: opened %s, want %s", i, *fast[i], *general[i])
		}
	}
	want := `{"id":"1","data":{"note":"lunch \"at\" \u003cJoe's\u003e ₹","amount_paise":500,"reason":"[erased]"}}`
	if string(*fast[0]) != want {
		t.Errorf("body 0: %s, want %s", *fast[0], want)
	}
	if string(*fast[1]) != bodies[1] || string(*fast[2]) != bodies[2] {
		t.Errorf("bodies without a sealed value changed: %s, %s", *fast[1], *fast[2])
	}
}
