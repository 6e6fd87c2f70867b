package webhooks

import (
	"testing"
	"time"
)

// The schedule doubles from RetryBase up to RetryMax, keeps at least half of each step (jitter takes at
// most the other half), honours Retry-After up to RetryMax, and with the defaults spans more than 24 hours
// before a delivery is given up.
func TestBackoff(t *testing.T) {
	s := &Sender{cfg: DefaultSenderConfig}
	for n, step := range []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second} {
		for range 100 {
			if d := s.Backoff(n+1, 0); d < step/2 || d > step {
				t.Fatalf("attempt %d: %s, want %s to %s", n+1, d, step/2, step)
			}
		}
	}
	if d := s.Backoff(40, 0); d > time.Hour || d < 30*time.Minute {
		t.Errorf("late attempt: %s, want at most an hour", d)
	}
	if d := s.Backoff(1, 10*time.Minute); d != 10*time.Minute {
		t.Errorf("Retry-After 10m: %s", d)
	}
	if d := s.Backoff(1, 48*time.Hour); d != time.Hour {
		t.Errorf("Retry-After 48h: %s, want capped at an hour", d)
	}
	var span time.Duration
	attempts := 0
	for span < DefaultSenderConfig.MaxAge {
		attempts++
		span += s.Backoff(attempts, 0)
	}
	if DefaultSenderConfig.MaxAge < 24*time.Hour || attempts < 20 {
		t.Errorf("the default schedule gives up after %d attempts over %s", attempts, DefaultSenderConfig.MaxAge)
	}
}
