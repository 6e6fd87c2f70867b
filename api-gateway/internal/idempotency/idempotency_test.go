package idempotency_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"upi/api-gateway/internal/idempotency"
	"upi/shared/testenv"
)

func TestFingerprint(t *testing.T) {
	a := idempotency.Fingerprint([]byte(`{"vpa":"a@b","holder_name":"A"}`))
	for _, same := range []string{
		`{"holder_name":"A","vpa":"a@b"}`,
		"{\n  \"vpa\" : \"a@b\",\t\"holder_name\": \"A\"\n}",
	} {
		if got := idempotency.Fingerprint([]byte(same)); got != a {
			t.Errorf("%s: fingerprint differs from the same meaning", same)
		}
	}
	for _, other := range []string{
		`{"vpa":"a@b","holder_name":"B"}`,
		`{"vpa":"a@b","holder_name":"A","note":""}`,
		`{"vpa":"a@b"}`,
	} {
		if got := idempotency.Fingerprint([]byte(other)); got == a {
			t.Errorf("%s: same fingerprint as a different body", other)
		}
	}
	if idempotency.Fingerprint([]byte(`{"amount_paise":100}`)) == idempotency.Fingerprint([]byte(`{"amount_paise":1e2}`)) {
		t.Errorf("numbers must keep their literal text")
	}
}

func newStore(t *testing.T, lockTTL time.Duration) (*idempotency.Store, *redis.Client) {
	t.Helper()
	opts, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return idempotency.NewStore(rdb, lockTTL, time.Hour), rdb
}

func TestClaimCompleteReplay(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t, 30*time.Second)
	scope := idempotency.Scope{Client: "c1", Method: "POST", Path: "/v1/payments", Key: "k"}

	out, err := s.Begin(ctx, scope, "fp1")
	if err != nil || out.Claim == nil {
		t.Fatalf("first Begin = %+v, %v; want a claim", out, err)
	}
	if _, err := s.Begin(ctx, scope, "fp1"); !errors.Is(err, idempotency.ErrInFlight) {
		t.Fatalf("Begin while in flight = %v, want ErrInFlight", err)
	}
	if _, err := s.Begin(ctx, scope, "fp2"); !errors.Is(err, idempotency.ErrReused) {
		t.Fatalf("Begin with another body = %v, want ErrReused", err)
	}
	// Another client's same key is independent.
	other := scope
	other.Client = "c2"
	if out, err := s.Begin(ctx, other, "fp2"); err != nil || out.Claim == nil {
		t.Fatalf("other client's Begin = %+v, %v", out, err)
	}

	resp := idempotency.Response{Status: 202, Header: map[string]string{"Location": "/v1/payments/x"}, Body: []byte("{\"a\":1}\n")}
	if ok, err := out.Claim.Complete(ctx, resp); !ok || err != nil {
		t.Fatalf("Complete = %v, %v", ok, err)
	}
	got, err := s.Begin(ctx, scope, "fp1")
	if err != nil || got.Replay == nil || got.Replay.Status != 202 || string(got.Replay.Body) != string(resp.Body) ||
		got.Replay.Header["Location"] != "/v1/payments/x" {
		t.Fatalf("replay = %+v, %v", got.Replay, err)
	}
	if _, err := s.Begin(ctx, scope, "fp2"); !errors.Is(err, idempotency.ErrReused) {
		t.Fatalf("Begin with another body after completion = %v, want ErrReused", err)
	}
	// The stored response lives for the configured TTL, not the lock's.
	keys, _ := rdb.Keys(ctx, "idem:*").Result()
	for _, k := range keys {
		if ttl := rdb.PTTL(ctx, k).Val(); ttl > time.Hour || ttl < 59*time.Minute && ttl > 31*time.Second {
			t.Fatalf("TTL of %s = %v", k, ttl)
		}
	}
}

func TestReleaseAndLostClaim(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, 200*time.Millisecond)
	scope := idempotency.Scope{Client: "c1", Method: "POST", Path: "/v1/accounts", Key: "k"}

	out, _ := s.Begin(ctx, scope, "fp")
	if err := out.Claim.Release(ctx); err != nil {
		t.Fatal(err)
	}
	second, err := s.Begin(ctx, scope, "fp")
	if err != nil || second.Claim == nil {
		t.Fatalf("Begin after release = %+v, %v; want a new claim", second, err)
	}
	// The second claim expires and a third request claims the key: the second may no longer write.
	time.Sleep(300 * time.Millisecond)
	third, err := s.Begin(ctx, scope, "fp")
	if err != nil || third.Claim == nil {
		t.Fatalf("Begin after expiry = %+v, %v", third, err)
	}
	if ok, err := second.Claim.Complete(ctx, idempotency.Response{Status: 201, Body: []byte("late")}); ok || err != nil {
		t.Fatalf("late Complete = %v, %v; want refused", ok, err)
	}
	if err := second.Claim.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Begin(ctx, scope, "fp"); !errors.Is(err, idempotency.ErrInFlight) {
		t.Fatalf("the late release freed the third claim: %v", err)
	}
}
