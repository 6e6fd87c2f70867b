package auth_test

import (
	"testing"

	"upi/api-gateway/internal/auth"
	"upi/shared/platform/keyring"
)

func TestAuthenticate(t *testing.T) {
	a := auth.New(map[string]string{"alpha-secret": "psp-alpha", "beta-secret": "psp-beta"})
	for _, tc := range []struct {
		header, client string
		ok             bool
	}{
		{"Bearer alpha-secret", "psp-alpha", true},
		{"bearer beta-secret", "psp-beta", true},
		{"Bearer  alpha-secret ", "psp-alpha", true},
		{"Bearer alpha-secre", "", false},
		{"Bearer alpha-secretx", "", false},
		{"Basic alpha-secret", "", false},
		{"alpha-secret", "", false},
		{"Bearer ", "", false},
		{"", "", false},
	} {
		client, ok := a.Authenticate(tc.header)
		if client != tc.client || ok != tc.ok {
			t.Errorf("Authenticate(%q) = %q, %v; want %q, %v", tc.header, client, ok, tc.client, tc.ok)
		}
	}
}

func TestIdentifyRoles(t *testing.T) {
	a := auth.NewKeyrings(keyring.FromMap(map[string]string{"alpha-secret": "psp-alpha"}),
		keyring.FromMap(map[string]string{"ops-secret": "alice-ops"}))
	if name, role, ok := a.Identify("Bearer alpha-secret"); !ok || role != auth.Client || name != "psp-alpha" {
		t.Errorf("client key = %q %v %v", name, role, ok)
	}
	if name, role, ok := a.Identify("Bearer ops-secret"); !ok || role != auth.Operator || name != "alice-ops" {
		t.Errorf("operator key = %q %v %v", name, role, ok)
	}
	if client, ok := a.Authenticate("Bearer ops-secret"); ok {
		t.Errorf("an operator's key authenticated client %q", client)
	}
}
