package webhook

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignAndVerify(t *testing.T) {
	body := []byte(`{"id":"e1","type":"payment.completed"}`)
	now := time.Unix(1733400000, 0)
	oldSecret, newSecret := Secret("k", "ep", 1), Secret("k", "ep", 2)
	if oldSecret == newSecret || !strings.HasPrefix(oldSecret, "whsec_") {
		t.Fatalf("secrets %q %q", oldSecret, newSecret)
	}
	h := SignatureHeader(now.Unix(), body, newSecret, oldSecret)
	cases := []struct {
		name    string
		header  string
		body    []byte
		secrets []string
		now     time.Time
		want    error
	}{
		{"new secret", h, body, []string{newSecret}, now, nil},
		{"old secret during the overlap", h, body, []string{oldSecret}, now, nil},
		{"other endpoint's secret", h, body, []string{Secret("k", "other", 1)}, now, ErrNoMatch},
		{"changed body", h, []byte(`{"id":"e2"}`), []string{newSecret}, now, ErrNoMatch},
		{"replayed late", h, body, []string{newSecret}, now.Add(6 * time.Minute), ErrTooOld},
		{"from the future", h, body, []string{newSecret}, now.Add(-6 * time.Minute), ErrTooOld},
		{"just within tolerance", h, body, []string{newSecret}, now.Add(5 * time.Minute), nil},
		{"no v1", "t=1733400000", body, []string{newSecret}, now, ErrMalformedHeader},
		{"garbage", "hello", body, []string{newSecret}, now, ErrMalformedHeader},
		{"bad hex", "t=1733400000,v1=zz", body, []string{newSecret}, now, ErrMalformedHeader},
	}
	for _, c := range cases {
		if err := Verify(c.header, c.body, c.secrets, 0, c.now); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestFilters(t *testing.T) {
	for f, want := range map[string]bool{"payment.completed": true, "payment.*": true, "refund.*": true,
		"payment": false, "*": true, "**": false, "payment.done": false, "collect_request.expired": true} {
		if ValidFilter(f) != want {
			t.Errorf("ValidFilter(%q) = %v", f, !want)
		}
	}
}
