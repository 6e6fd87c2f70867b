package redis_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	redisadapter "upi/api-gateway/internal/adapters/redis"
	"upi/api-gateway/internal/app"
)

// tripCounter counts the commands sent to Redis, each one round trip, except the EVALSHA that finds a
// script not yet loaded (once per script and server, before its EVAL).
type tripCounter struct{ n atomic.Int64 }

func (c *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if !redis.HasErrorPrefix(err, "NOSCRIPT") {
			c.n.Add(1)
		}
		return err
	}
}
func (c *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

type fixture struct {
	store *redisadapter.Store
	rdb   *redis.Client
	trips *tripCounter
}

func newFixture(t *testing.T, lockTTL time.Duration, rps, burst int) *fixture {
	t.Helper()
	rdb := testRedis(t)
	limiter := redisadapter.NewLimiter(rdb, rps, burst, quiet)
	f := &fixture{
		store: redisadapter.NewStore(rdb, limiter, lockTTL, time.Hour),
		rdb:   rdb,
		trips: &tripCounter{},
	}
	// Connect first: a new connection's handshake is not the requests' cost.
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.AddHook(f.trips)
	return f
}

func (f *fixture) begin(t *testing.T, scope app.Scope, fp string) (app.Rate, app.Outcome, error) {
	t.Helper()
	before := f.trips.n.Load()
	res, out, err := f.store.Begin(context.Background(), "client:"+scope.Client, scope, fp)
	if n := f.trips.n.Load() - before; n != 1 {
		t.Fatalf("Begin took %d Redis round trips, want 1", n)
	}
	return res, out, err
}

func TestBeginClaimReplayReusedInFlight(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 30*time.Second, 1, 1000)
	scope := app.Scope{Client: "c1", Method: "POST", Path: "/v1/payments", Key: "k"}

	res, out, err := f.begin(t, scope, "fp1")
	if err != nil || out.Claim == nil || !res.Allowed || res.Remaining != 999 || res.Limit != 1000 {
		t.Fatalf("first Begin = %+v, %+v, %v; want a claim within the limit", res, out, err)
	}
	if _, _, err := f.begin(t, scope, "fp1"); !errors.Is(err, app.ErrInFlight) {
		t.Fatalf("Begin while in flight = %v, want ErrInFlight", err)
	}
	if _, _, err := f.begin(t, scope, "fp2"); !errors.Is(err, app.ErrReused) {
		t.Fatalf("Begin with another body = %v, want ErrReused", err)
	}
	// Another client's same key is independent.
	other := scope
	other.Client = "c2"
	if _, o, err := f.begin(t, other, "fp2"); err != nil || o.Claim == nil {
		t.Fatalf("other client's Begin = %+v, %v", o, err)
	}

	resp := app.StoredResponse{Status: 202, Header: map[string]string{"Location": "/v1/payments/x"}, Body: []byte("{\"a\":1}\n")}
	before := f.trips.n.Load()
	if ok, err := out.Claim.Complete(ctx, resp); !ok || err != nil {
		t.Fatalf("Complete = %v, %v", ok, err)
	}
	if n := f.trips.n.Load() - before; n != 1 {
		t.Fatalf("Complete took %d Redis round trips, want 1", n)
	}
	res, got, err := f.begin(t, scope, "fp1")
	if err != nil || got.Replay == nil || got.Replay.Status != 202 || string(got.Replay.Body) != string(resp.Body) ||
		got.Replay.Header["Location"] != "/v1/payments/x" {
		t.Fatalf("replay = %+v, %v", got.Replay, err)
	}
	if !res.Allowed || res.Remaining != 996 {
		t.Fatalf("a replay's rate limit = %+v; want it counted as c1's fourth request", res)
	}
	if _, _, err := f.begin(t, scope, "fp2"); !errors.Is(err, app.ErrReused) {
		t.Fatalf("Begin with another body after completion = %v, want ErrReused", err)
	}
	// The stored response lives for the configured TTL, not the lock's.
	keys, _ := f.rdb.Keys(ctx, "idem:*").Result()
	for _, k := range keys {
		if ttl := f.rdb.PTTL(ctx, k).Val(); ttl > time.Hour || ttl < 59*time.Minute && ttl > 31*time.Second {
			t.Fatalf("TTL of %s = %v", k, ttl)
		}
	}
}

// TestRateLimitedMakesNoClaim: a request over its client's limit claims nothing, so the same key is free
// for the retry that comes once the limit allows it.
func TestRateLimitedMakesNoClaim(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 30*time.Second, 1, 2)
	for i, key := range []string{"a", "b"} {
		if res, out, err := f.begin(t, app.Scope{Client: "c", Method: "POST", Path: "/p", Key: key}, "fp"); !res.Allowed || out.Claim == nil || err != nil {
			t.Fatalf("request %d = %+v %+v %v, want claimed within the burst", i, res, out, err)
		}
	}
	scope := app.Scope{Client: "c", Method: "POST", Path: "/p", Key: "limited"}
	res, out, err := f.begin(t, scope, "fp")
	if res.Allowed || out.Claim != nil || out.Replay != nil || err != nil {
		t.Fatalf("over the limit = %+v %+v %v; want refused with nothing claimed", res, out, err)
	}
	if res.Remaining != 0 || res.RetryAfter <= 0 || res.RetryAfter > time.Second || res.ResetAfter <= time.Second {
		t.Fatalf("limited result = %+v", res)
	}
	if n, _ := f.rdb.Exists(ctx, "idem:v1:"+hexScope(scope)).Result(); n != 0 {
		t.Fatalf("a limited request left a claim")
	}
	time.Sleep(res.RetryAfter + 50*time.Millisecond)
	if res, out, err := f.begin(t, scope, "fp"); !res.Allowed || out.Claim == nil || err != nil {
		t.Fatalf("after the wait = %+v %+v %v, want the key claimed", res, out, err)
	}
}

// hexScope mirrors the package's Redis key of a scope, to look for it from outside.
func hexScope(s app.Scope) string {
	h := sha256.Sum256([]byte(s.Client + "\x00" + s.Method + "\x00" + s.Path + "\x00" + s.Key))
	return hex.EncodeToString(h[:])
}

func TestReleaseAndLostClaim(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 200*time.Millisecond, 1000, 1000)
	scope := app.Scope{Client: "c1", Method: "POST", Path: "/v1/accounts", Key: "k"}

	_, out, _ := f.begin(t, scope, "fp")
	before := f.trips.n.Load()
	if err := out.Claim.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.trips.n.Load() - before; n != 1 {
		t.Fatalf("Release took %d Redis round trips, want 1", n)
	}
	_, second, err := f.begin(t, scope, "fp")
	if err != nil || second.Claim == nil {
		t.Fatalf("Begin after release = %+v, %v; want a new claim", second, err)
	}
	// The second claim expires and a third request claims the key: the second may no longer write.
	time.Sleep(300 * time.Millisecond)
	_, third, err := f.begin(t, scope, "fp")
	if err != nil || third.Claim == nil {
		t.Fatalf("Begin after expiry = %+v, %v", third, err)
	}
	if ok, err := second.Claim.Complete(ctx, app.StoredResponse{Status: 201, Body: []byte("late")}); ok || err != nil {
		t.Fatalf("late Complete = %v, %v; want refused", ok, err)
	}
	if err := second.Claim.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.begin(t, scope, "fp"); !errors.Is(err, app.ErrInFlight) {
		t.Fatalf("the late release freed the third claim: %v", err)
	}
}

// TestRedisFlushedMidFlight: Redis loses the claim while the command runs. The outcome is not written
// (it would stand for a claim nobody holds), and the retry claims the key afresh and goes to the command
// service, whose own dedupe answers it.
func TestRedisFlushedMidFlight(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 30*time.Second, 1000, 1000)
	scope := app.Scope{Client: "c1", Method: "POST", Path: "/v1/payments", Key: "k"}
	_, out, err := f.begin(t, scope, "fp")
	if err != nil || out.Claim == nil {
		t.Fatalf("Begin = %+v, %v", out, err)
	}
	if err := f.rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, err := out.Claim.Complete(ctx, app.StoredResponse{Status: 202, Body: []byte("{}")}); ok || err != nil {
		t.Fatalf("Complete after a flush = %v, %v; want nothing written", ok, err)
	}
	if n, _ := f.rdb.Exists(ctx, "idem:v1:"+hexScope(scope)).Result(); n != 0 {
		t.Fatalf("the flushed claim's outcome was written")
	}
	// A Redis that restarted has lost its script cache too: the next Begin loads the script again.
	if err := f.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	res, again, err := f.store.Begin(ctx, "client:c1", scope, "fp")
	if err != nil || again.Claim == nil || !res.Allowed || res.Fallback {
		t.Fatalf("Begin after the flush = %+v %+v %v; want a fresh claim", res, again, err)
	}
}

// TestBeginWithRedisDown: the rate limit is decided in process and the claim reports that Redis did not
// answer, quickly.
func TestBeginWithRedisDown(t *testing.T) {
	rdb := unreachableRedis(t)
	limiter := redisadapter.NewLimiter(rdb, 1, 2, quiet)
	store := redisadapter.NewStore(rdb, limiter, 30*time.Second, time.Hour)
	scope := app.Scope{Client: "c1", Method: "POST", Path: "/v1/payments", Key: "k"}
	start := time.Now()
	for i := range 3 {
		res, out, err := store.Begin(context.Background(), "client:c1", scope, "fp")
		if !res.Fallback || out.Claim != nil || out.Replay != nil {
			t.Fatalf("request %d = %+v %+v; want an in-process decision and no claim", i, res, out)
		}
		if wantAllowed := i < 2; res.Allowed != wantAllowed {
			t.Fatalf("request %d allowed = %v, want %v (burst 2)", i, res.Allowed, wantAllowed)
		}
		if res.Allowed && (err == nil || errors.Is(err, app.ErrInFlight) || errors.Is(err, app.ErrReused)) {
			t.Fatalf("request %d error = %v; want Redis unavailable", i, err)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("three requests with Redis down took %v", took)
	}
}

// TestClaimRecordFormat: the claim's record is what earlier gateways wrote and read, so gateways of both
// kinds can share Redis during a rolling upgrade.
func TestClaimRecordFormat(t *testing.T) {
	f := newFixture(t, 30*time.Second, 1000, 1000)
	hexFP := sha256.Sum256([]byte(`{"vpa":"a@b"}`))
	for _, fp := range []string{hex.EncodeToString(hexFP[:]), `not "hex"`} {
		scope := app.Scope{Client: "c1", Method: "POST", Path: "/v1/accounts", Key: fp}
		if _, out, err := f.begin(t, scope, fp); err != nil || out.Claim == nil {
			t.Fatalf("Begin = %+v, %v", out, err)
		}
		raw, err := f.rdb.Get(context.Background(), "idem:v1:"+hexScope(scope)).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			State       string `json:"state"`
			Fingerprint string `json:"fingerprint"`
			Owner       string `json:"owner,omitempty"`
		}
		if err := json.Unmarshal(raw, &rec); err != nil || rec.State != "in_flight" || rec.Fingerprint != fp || len(rec.Owner) != 32 {
			t.Fatalf("claim record %s: %+v %v", raw, rec, err)
		}
		if want, _ := json.Marshal(rec); string(raw) != string(want) {
			t.Fatalf("claim record %s, want %s", raw, want)
		}
	}
}
