package pii_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"

	"upi/shared/platform/pii"
	"upi/testenv"
)

// Keys made by concurrent keyrings (two command-service replicas) agree; an erasure leaves a tombstone
// that no keyring can ever replace, and every sealed value of the person then opens as erased.
func TestKeyringMakesOneKeyPerPersonAndErasesForGood(t *testing.T) {
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	rings := []*pii.Keyring{pii.NewKeyring(pool, 0), pii.NewKeyring(pool, 0)}
	got := make([]map[string][]byte, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			k, err := rings[i%2].Ensure(ctx, "alice@okbank", "bob@okbank")
			if err != nil {
				t.Error(err)
			}
			got[i] = k
		})
	}
	wg.Wait()
	for _, k := range got[1:] {
		if !bytes.Equal(k["alice@okbank"], got[0]["alice@okbank"]) || !bytes.Equal(k["bob@okbank"], got[0]["bob@okbank"]) ||
			len(k["alice@okbank"]) != pii.KeySize {
			t.Fatalf("keyrings disagree on the keys")
		}
	}
	name, _ := pii.Seal("Alice Example", pii.Key{Subject: "alice@okbank", Bytes: got[0]["alice@okbank"]})
	note, _ := pii.Seal("dinner", pii.Key{Subject: "alice@okbank", Bytes: got[0]["alice@okbank"]},
		pii.Key{Subject: "bob@okbank", Bytes: got[0]["bob@okbank"]})
	doc := json.RawMessage(`{"note":"` + note + `","amount_paise":500}`)
	n, m := name, note
	if err := pii.OpenFields(ctx, pool, pii.Fields{Strings: []*string{&n, &m}, JSON: []*json.RawMessage{&doc}}); err != nil {
		t.Fatal(err)
	}
	if n != "Alice Example" || m != "dinner" || !bytes.Contains(doc, []byte(`"note":"dinner"`)) {
		t.Fatalf("opened %q %q %s", n, m, doc)
	}

	if err := rings[0].Erase(ctx, "bob@okbank"); err != nil {
		t.Fatal(err)
	}
	if err := rings[0].Erase(ctx, "bob@okbank"); err != nil {
		t.Fatalf("erasing twice: %v", err)
	}
	rings[1].Forget("bob@okbank") // what another replica's cache would do on its own time
	for _, r := range rings {
		if k, err := r.Ensure(ctx, "bob@okbank"); err != nil || k["bob@okbank"] != nil {
			t.Errorf("a key for the erased person after erasure: %v %v", k, err)
		}
	}
	doc = json.RawMessage(`{"note":"` + note + `","amount_paise":500}`)
	n, m = name, note
	if err := pii.OpenFields(ctx, pool, pii.Fields{Strings: []*string{&n, &m}, JSON: []*json.RawMessage{&doc}}); err != nil {
		t.Fatal(err)
	}
	if n != "Alice Example" || m != pii.Erased || !bytes.Contains(doc, []byte(`"note":"[erased]"`)) || bytes.Contains(doc, []byte("dinner")) {
		t.Errorf("after Bob's erasure: %q %q %s", n, m, doc)
	}
	var tombstones int
	if err := pool.QueryRow(ctx, `select count(*) from subject_keys where key is null and erased_at is not null`).Scan(&tombstones); err != nil || tombstones != 1 {
		t.Errorf("tombstones %d (%v), want 1", tombstones, err)
	}
}
