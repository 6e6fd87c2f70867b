package pii

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
)

func key(t *testing.T, subject string) Key {
	t.Helper()
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return Key{Subject: subject, Bytes: b}
}

func TestSealedValuesOpenOnlyWithEveryKey(t *testing.T) {
	a, b := key(t, "alice@okbank"), key(t, "bob.shop@okbank")
	keys := map[string][]byte{a.Subject: a.Bytes, b.Subject: b.Bytes}

	one, err := Seal("Alice Example", a)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := Seal("lunch on friday", a, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, sealed := range []string{one, pair} {
		if !IsSealed(sealed) || strings.Contains(sealed, "Alice") || strings.Contains(sealed, "lunch") {
			t.Errorf("sealed value %q", sealed)
		}
	}
	if got, err := Open(one, keys); err != nil || got != "Alice Example" {
		t.Errorf("Open(one) = %q, %v", got, err)
	}
	if got, err := Open(pair, keys); err != nil || got != "lunch on friday" {
		t.Errorf("Open(pair) = %q, %v", got, err)
	}
	if subs, _ := Subjects(pair); len(subs) != 2 || subs[0] != a.Subject || subs[1] != b.Subject {
		t.Errorf("Subjects(pair) = %v", subs)
	}
	// Erasing either person erases the pair's value; erasing Bob leaves Alice's name.
	withoutBob := map[string][]byte{a.Subject: a.Bytes}
	if got := OpenOrErased(pair, withoutBob); got != Erased {
		t.Errorf("the pair's value without Bob's key = %q", got)
	}
	if got := OpenOrErased(one, withoutBob); got != "Alice Example" {
		t.Errorf("Alice's name without Bob's key = %q", got)
	}
	// A value moved to another subject's header does not open (the header is authenticated).
	forged := strings.Replace(one, one[len(Prefix):strings.LastIndexByte(one, ':')], b64.EncodeToString([]byte(b.Subject)), 1)
	if _, err := Open(forged, keys); err == nil {
		t.Errorf("a value moved to another subject opened")
	}
	// Plaintext (events written before sealing) is returned as it is; nothing is sealed for "".
	if got, _ := Open("Legacy Name", nil); got != "Legacy Name" {
		t.Errorf("Open(plaintext) = %q", got)
	}
	if got, _ := Seal("", a); got != "" {
		t.Errorf("Seal(\"\") = %q", got)
	}
	// Two seals of one value differ (random nonce).
	again, _ := Seal("Alice Example", a)
	if bytes.Equal([]byte(again), []byte(one)) {
		t.Errorf("sealing twice gave the same value")
	}
}
