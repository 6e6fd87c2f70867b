package auth_test

import (
	"testing"

	"upi/api-gateway/internal/auth"
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
