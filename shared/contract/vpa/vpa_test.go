package vpa

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"alice@okbank", "alice@okbank", true},
		{"Alice.B_c-1@OkBank9", "alice.b_c-1@okbank9", true},
		{"a@b", "a@b", true},
		{"@b", "", false},
		{"a@", "", false},
		{"ab", "", false},
		{"a@@b", "", false},
		{"a b@bank", "", false},
		{"alice@ok.bank", "", false},
		{"alice@ok-bank", "", false},
		{"al+ce@okbank", "", false},
		{"älice@okbank", "", false},
		{strings.Repeat("a", 250) + "@bank", strings.Repeat("a", 250) + "@bank", true},
		{strings.Repeat("a", 251) + "@bank", "", false},
	} {
		got, err := Parse(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("Parse(%q) error = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if got.String() != tc.want {
			t.Errorf("Parse(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
