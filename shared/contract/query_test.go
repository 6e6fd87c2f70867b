package contract

import (
	"testing"
	"time"
)

func TestParseWait(t *testing.T) {
	for s, want := range map[string]time.Duration{"0": 0, "5": 5 * time.Second, "30": MaxWait, "1500ms": 1500 * time.Millisecond, "30s": MaxWait, "0s": 0} {
		if d, ok := ParseWait(s); !ok || d != want {
			t.Errorf("ParseWait(%q) = %v, %v; want %v", s, d, ok, want)
		}
	}
	for _, s := range []string{"", "31", "-1", "30.5s", "-1s", "1m", "5x", "99999999999999999999h"} {
		if _, ok := ParseWait(s); ok {
			t.Errorf("ParseWait(%q) accepted", s)
		}
	}
}

func TestParsePageLimit(t *testing.T) {
	for s, want := range map[string]bool{"1": true, "200": true, "50": true, "0": false, "201": false, "-3": false, "": false, "1.5": false, "ten": false} {
		if _, ok := ParsePageLimit(s); ok != want {
			t.Errorf("ParsePageLimit(%q) ok = %v, want %v", s, ok, want)
		}
	}
}

func TestIsRRN(t *testing.T) {
	for s, want := range map[string]bool{"123456789012": true, "12345678901": false, "1234567890123": false, "12345678901a": false, "": false} {
		if IsRRN(s) != want {
			t.Errorf("IsRRN(%q) = %v", s, !want)
		}
	}
}
