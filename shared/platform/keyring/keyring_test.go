package keyring

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"upi/shared/platform/secrets"
)

func TestLookupByKeyOrDigest(t *testing.T) {
	entries, err := Parse("psp-alpha=alpha-key-0123456789, psp-beta=" + Digest("beta-key-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	k := New(entries)
	for _, tc := range []struct{ key, name string }{
		{"alpha-key-0123456789", "psp-alpha"},
		{"beta-key-0123456789", "psp-beta"},
		{Digest("beta-key-0123456789"), ""}, // the digest itself is no key
		{"alpha-key-012345678", ""},
		{"", ""},
	} {
		name, ok := k.Lookup(tc.key)
		if name != tc.name || ok != (tc.name != "") {
			t.Errorf("Lookup(%q) = %q, %v; want %q", tc.key, name, ok, tc.name)
		}
	}
	for _, bad := range []string{"noequals", "=key", "name=", "a=k1,b=k1", "a=sha256:zz"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestVetRefusesDevelopmentAndShortKeys(t *testing.T) {
	entries, _ := Parse("a=alpha-secret,b=short,c=" + Digest("x") + ",d=a-long-enough-key-of-d")
	var check secrets.Check
	Vet(&check, "API_KEYS", entries)
	err := check.Err("test")
	if err == nil {
		t.Fatal("development and short keys accepted")
	}
	for _, want := range []string{"key of a is a development default", "key of b is shorter"} {
		if !contains(err.Error(), want) {
			t.Errorf("%v: missing %q", err, want)
		}
	}
	if contains(err.Error(), "key of c") || contains(err.Error(), "key of d") {
		t.Errorf("good keys refused: %v", err)
	}
}

// TestRotationWithoutRestart: a key added to the watched file works with the old one; once the old one is
// removed, only the new one does; a broken edit keeps the keys that were working.
func TestRotationWithoutRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api_keys")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("psp-alpha=old-key-0123456789\n")
	entries, _ := Parse("psp-alpha=old-key-0123456789")
	k := New(entries)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Watch(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), k, "API_KEYS", path, 5*time.Millisecond, nil)
	eventually := func(key string, want bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, ok := k.Lookup(key); ok == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Lookup(%q) never became %v", key, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	write("psp-alpha=old-key-0123456789,psp-alpha=" + Digest("new-key-0123456789") + "\n")
	eventually("new-key-0123456789", true)
	eventually("old-key-0123456789", true)
	write("psp-alpha=" + Digest("new-key-0123456789") + "\n")
	eventually("old-key-0123456789", false)
	write("psp-alpha") // a broken edit
	time.Sleep(50 * time.Millisecond)
	eventually("new-key-0123456789", true)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
