package redis_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	redisadapter "upi/api-gateway/internal/adapters/redis"
	"upi/api-gateway/internal/config"
	"upi/testenv"
)

// quiet is the adapters' logger in these tests.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testRedis is a client of the test Redis, closed when the test ends.
func testRedis(t *testing.T) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// unreachableRedis is a client with the gateway's own settings on a port where nothing listens.
func unreachableRedis(t *testing.T) *redis.Client {
	t.Helper()
	opts, err := config.RedisOptions("redis://127.0.0.1:1/0")
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func newLimiter(t *testing.T, rps, burst int) (*redisadapter.Limiter, *redis.Client) {
	rdb := testRedis(t)
	return redisadapter.NewLimiter(rdb, rps, burst, quiet), rdb
}

// TestSameDecisionsAsRedisRate: the script makes the decisions go-redis/redis_rate v10 made, which
// gateways before it used, and shares its state: one client's requests alternating between an old
// gateway and a new one (a rolling upgrade) are limited as one.
func TestSameDecisionsAsRedisRate(t *testing.T) {
	ctx := context.Background()
	_, rdb := newLimiter(t, 1, 1)
	old := redis_rate.NewLimiter(rdb)

	// A fresh key's answer depends on no clock, so it must be the same to the bit, rounding included (at
	// ten a second and a burst of 5, Remaining is 3 in both: 3.99999... rounded down).
	for _, c := range []struct{ rps, burst int }{{1, 1}, {1, 5}, {10, 5}, {100, 200}, {3, 7}, {1000, 1}} {
		key := strconv.Itoa(c.rps) + "-" + strconv.Itoa(c.burst)
		ours := redisadapter.NewLimiter(rdb, c.rps, c.burst, quiet).Allow(ctx, "ours-"+key)
		theirs, err := old.Allow(ctx, "theirs-"+key, redis_rate.Limit{Rate: c.rps, Burst: c.burst, Period: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if !ours.Allowed || theirs.Allowed != 1 || ours.Remaining != theirs.Remaining || ours.ResetAfter != theirs.ResetAfter {
			t.Errorf("rps %d burst %d: ours %+v, redis_rate %+v", c.rps, c.burst, ours, theirs)
		}
	}

	// Through a burst and past it, side by side on two keys: the same answers, durations apart by no
	// more than the time since the first pair (each key's state dates from its own earlier calls, so the
	// two drift apart by every earlier gap between them, not only this pair's).
	const burst = 3
	l := redisadapter.NewLimiter(rdb, 1, burst, quiet)
	limit := redis_rate.Limit{Rate: 1, Burst: burst, Period: time.Second}
	start := time.Now()
	for i := range burst + 2 {
		ours := l.Allow(ctx, "ours")
		theirs, err := old.Allow(ctx, "theirs", limit)
		if err != nil {
			t.Fatal(err)
		}
		gap := time.Since(start) + time.Millisecond
		near := func(a, b time.Duration) bool { return (a - b).Abs() <= gap }
		if ours.Allowed != (theirs.Allowed > 0) || ours.Remaining != theirs.Remaining || ours.Allowed != (i < burst) ||
			!near(ours.RetryAfter, max(theirs.RetryAfter, 0)) || !near(ours.ResetAfter, max(theirs.ResetAfter, 0)) {
			t.Fatalf("request %d: ours %+v, redis_rate %+v", i, ours, theirs)
		}
	}

	// Alternating on one key: one budget.
	for i := range burst + 2 {
		var allowed bool
		var remaining int
		if i%2 == 0 {
			res := l.Allow(ctx, "shared")
			allowed, remaining = res.Allowed, res.Remaining
		} else {
			res, err := old.Allow(ctx, "shared", limit)
			if err != nil {
				t.Fatal(err)
			}
			allowed, remaining = res.Allowed > 0, res.Remaining
		}
		if want := i < burst; allowed != want || (allowed && remaining != burst-1-i) {
			t.Fatalf("request %d on the shared key: allowed %v remaining %d", i, allowed, remaining)
		}
	}
}

func TestBurstThenSustainedRate(t *testing.T) {
	ctx := context.Background()
	l, _ := newLimiter(t, 2, 3)
	for i := range 3 {
		res := l.Allow(ctx, "k")
		if !res.Allowed || res.Remaining != 2-i || res.RetryAfter != 0 || res.Fallback {
			t.Fatalf("request %d = %+v, want allowed with %d remaining", i, res, 2-i)
		}
	}
	res := l.Allow(ctx, "k")
	if res.Allowed || res.Remaining != 0 || res.RetryAfter <= 0 || res.RetryAfter > 500*time.Millisecond ||
		res.ResetAfter <= time.Second || res.ResetAfter > 1500*time.Millisecond {
		t.Fatalf("over the burst = %+v; want refused, retry within 0.5s, full reset in 1.5s", res)
	}
	// A refused request costs nothing: after one emission interval, exactly one more passes.
	time.Sleep(res.RetryAfter + 20*time.Millisecond)
	if res := l.Allow(ctx, "k"); !res.Allowed {
		t.Fatalf("after Retry-After = %+v, want allowed", res)
	}
	if res := l.Allow(ctx, "k"); res.Allowed {
		t.Fatalf("second request after one interval = %+v, want refused", res)
	}
}

func TestAllowAndLock(t *testing.T) {
	ctx := context.Background()
	l, rdb := newLimiter(t, 1, 2)
	lock := redisadapter.Lock{Key: "lock:1", Value: "mine", TTL: 10 * time.Second}

	res, locked := l.AllowAndLock(ctx, "k", lock)
	if !res.Allowed || !locked.Taken || locked.Held != nil || locked.Err != nil {
		t.Fatalf("first = %+v %+v, want allowed and taken", res, locked)
	}
	if ttl := rdb.PTTL(ctx, lock.Key).Val(); ttl <= 9*time.Second || ttl > 10*time.Second {
		t.Fatalf("lock TTL = %v", ttl)
	}
	// The same value again (a retried call) still holds the key; another value finds it held.
	other := lock
	other.Value = "theirs"
	if res, locked := l.AllowAndLock(ctx, "other-client", lock); !res.Allowed || !locked.Taken {
		t.Fatalf("retried call = %+v %+v, want taken", res, locked)
	}
	if res, locked := l.AllowAndLock(ctx, "k", other); !res.Allowed || locked.Taken || string(locked.Held) != "mine" {
		t.Fatalf("another value = %+v %+v, want held by mine", res, locked)
	}
	// Over the limit: nothing tried, the key untouched.
	rdb.Del(ctx, lock.Key)
	res, locked = l.AllowAndLock(ctx, "k", other)
	if res.Allowed || locked.Taken || locked.Held != nil || locked.Err != nil {
		t.Fatalf("over the limit = %+v %+v, want refused and nothing tried", res, locked)
	}
	if n := rdb.Exists(ctx, lock.Key).Val(); n != 0 {
		t.Fatalf("a refused request took the lock")
	}
}

func TestFallbackWhenRedisDown(t *testing.T) {
	l := redisadapter.NewLimiter(unreachableRedis(t), 1, 2, quiet)
	for i := range 3 {
		res, locked := l.AllowAndLock(context.Background(), "k", redisadapter.Lock{Key: "lock:" + strconv.Itoa(i), Value: "v", TTL: time.Second})
		if !res.Fallback || locked.Err == nil || locked.Taken {
			t.Fatalf("request %d = %+v %+v; want decided in process, lock unknown", i, res, locked)
		}
		if want := i < 2; res.Allowed != want || res.Limit != 2 {
			t.Fatalf("request %d = %+v; want allowed %v within the burst of 2", i, res, want)
		}
	}
	if res := l.Allow(context.Background(), "k"); res.Allowed || !res.Fallback || res.RetryAfter <= 0 {
		t.Fatalf("fourth = %+v, want refused in process with a Retry-After", res)
	}
}
