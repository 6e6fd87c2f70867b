// Package redis holds the gateway's state in Redis: the rate limits (GCRA, so a limit holds across gateway
// replicas, with a per-process limiter while Redis cannot answer) and the idempotency fast path (claims
// and stored responses). One script decides a request's rate limit and, only when it is allowed, takes
// its idempotency claim, so a POST costs one round trip before it is forwarded rather than two or three.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"upi/api-gateway/internal/app"
)

// redisTimeout bounds one Redis round trip: a slow Redis must not slow every request down.
const redisTimeout = 250 * time.Millisecond

// pipelineConcurrency is how many round trips to Redis the gateway has under way before the scripts of
// requests that come meanwhile wait for one to return and go together, as one pipeline (pipeline). A round
// trip takes a fraction of a millisecond: one at a time costs a script that waits less than that.
const pipelineConcurrency = 1

// maxLocalKeys bounds the fallback limiter's memory. When exceeded, its state is dropped: for a moment
// that grants fresh bursts, which is the lesser harm next to unbounded growth under a flood of client IPs.
const maxLocalKeys = 10000

// keyPrefix is the prefix of the rate-limit keys, the one go-redis/redis_rate uses: gateways from before
// this script and after it share the same state, so a rolling upgrade grants no fresh bursts.
const keyPrefix = "rate:"

// Lock is a key to take for the request, in the same round trip as its rate limit: set to Value for TTL
// if it is free (SET NX PX), and only if the request is allowed.
type Lock struct {
	Key   string
	Value string
	TTL   time.Duration
}

// Locked is what became of a Lock. Nothing was tried when the request was not allowed.
type Locked struct {
	// Taken: the key was free (or already held with this very Value) and is now the request's.
	Taken bool
	// Held is the key's value when someone else holds it.
	Held []byte
	// Err is set when Redis did not answer: nothing is known of the key, and the rate limit was decided
	// in process.
	Err error
}

// Limiter limits each key to a sustained rate with a burst (app.Limiter).
type Limiter struct {
	rdb   *goredis.Client
	rate  int // requests per second, sustained
	burst int
	args  []any // the script's rate arguments, the same for every call
	log   *slog.Logger
	// pipe runs the scripts of concurrent requests together (the idempotency Store's too).
	pipe *pipeline

	mu    sync.Mutex
	local map[string]*rate.Limiter
}

// NewLimiter returns a Limiter allowing rps requests per second sustained and burst at once, per key.
func NewLimiter(rdb *goredis.Client, rps, burst int, log *slog.Logger) *Limiter {
	return &Limiter{
		rdb:   rdb,
		rate:  rps,
		burst: burst,
		args:  []any{burst, rps},
		log:   log,
		pipe:  newPipeline(rdb, pipelineConcurrency),
		local: map[string]*rate.Limiter{},
	}
}

// script is GCRA (the generic cell rate algorithm), with the arithmetic of go-redis/redis_rate v10's
// allowN at a cost of one request per call, and the same state (a key holding the theoretical arrival
// time, TAT, in seconds since 2017), followed, for a request it allows, by taking KEYS[2] when given.
//
// KEYS[1] the rate-limit key; KEYS[2] (optional) the key to take.
// ARGV[1] burst; ARGV[2] rate per second; ARGV[3] the value to set KEYS[2] to; ARGV[4] its TTL in ms.
//
// It returns {allowed, remaining, retry_after, reset_after[, lock]}: allowed 1 or 0; remaining whole
// requests; retry_after and reset_after in seconds, as strings (-1 for retry_after when allowed); lock 1
// when KEYS[2] was taken, or the value it holds. Redis 5 and later replicate a script by its effects,
// which its call to TIME needs. The two keys must live on one server: the gateway uses a single Redis
// (a Redis Cluster would need them to share a hash tag).
var script = goredis.NewScript(`
local emission_interval = 1 / tonumber(ARGV[2])
local burst_offset = emission_interval * tonumber(ARGV[1])

-- TIME is seconds and microseconds; counted from 2017 the sum keeps microsecond precision in a double
-- until 2048.
local now = redis.call('TIME')
now = (now[1] - 1483228800) + (now[2] / 1000000)

local tat = redis.call('GET', KEYS[1])
if not tat then
  tat = now
else
  tat = tonumber(tat)
end
tat = math.max(tat, now)

local new_tat = tat + emission_interval
local diff = now - (new_tat - burst_offset)
local remaining = diff / emission_interval
if remaining < 0 then
  return {0, 0, tostring(-diff), tostring(tat - now)}
end

local reset_after = new_tat - now
if reset_after > 0 then
  redis.call('SET', KEYS[1], new_tat, 'EX', math.ceil(reset_after))
end
if #KEYS < 2 then
  return {1, remaining, '-1', tostring(reset_after)}
end

-- A retried call finds its own value: the key is still the caller's.
local held = redis.call('GET', KEYS[2])
if held and held ~= ARGV[3] then
  return {1, remaining, '-1', tostring(reset_after), held}
end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
return {1, remaining, '-1', tostring(reset_after), 1}
`)

// Allow decides one request for key, in one Redis round trip. It never fails: with Redis down, the
// decision is made by a per-process limiter with the same settings (so N replicas allow up to N times the
// rate), which is neither failing open (no limit at all while Redis is down) nor failing closed (an outage
// of every client because a cache is down).
func (l *Limiter) Allow(ctx context.Context, key string) app.Rate {
	res, _, err := l.run(ctx, []string{keyPrefix + key}, l.args)
	if err != nil {
		l.log.WarnContext(ctx, "rate limiter: redis unavailable, limiting in process", "err", err)
		return l.allowLocal(key)
	}
	return res
}

// AllowAndLock decides one request for key like Allow and, only if it is allowed, takes lock, in the
// same Redis round trip. With Redis down, the decision is made in process and Locked.Err says that
// nothing is known of the lock.
func (l *Limiter) AllowAndLock(ctx context.Context, key string, lock Lock) (app.Rate, Locked) {
	args := append(l.args[:len(l.args):len(l.args)], lock.Value, lock.TTL.Milliseconds())
	res, locked, err := l.run(ctx, []string{keyPrefix + key, lock.Key}, args)
	if err != nil {
		l.log.WarnContext(ctx, "rate limiter: redis unavailable, limiting in process", "err", err)
		return l.allowLocal(key), Locked{Err: err}
	}
	return res, locked
}

func (l *Limiter) run(ctx context.Context, keys []string, args []any) (app.Rate, Locked, error) {
	v, err := l.pipe.run(ctx, redisTimeout, script, keys, args...).Slice()
	if err != nil {
		return app.Rate{}, Locked{}, fmt.Errorf("rate limit: %w", err)
	}
	return l.parse(v)
}

// parse reads the script's reply.
func (l *Limiter) parse(v []any) (app.Rate, Locked, error) {
	if len(v) < 4 {
		return app.Rate{}, Locked{}, errors.New("rate limit: short reply")
	}
	allowed, ok1 := v[0].(int64)
	remaining, ok2 := v[1].(int64)
	retry, ok3 := v[2].(string)
	reset, ok4 := v[3].(string)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return app.Rate{}, Locked{}, fmt.Errorf("rate limit: unexpected reply %v", v)
	}
	res := app.Rate{
		Allowed:    allowed > 0,
		Limit:      l.burst,
		Remaining:  int(remaining),
		RetryAfter: seconds(retry),
		ResetAfter: seconds(reset),
	}
	var locked Locked
	if len(v) > 4 {
		switch lv := v[4].(type) {
		case int64:
			locked.Taken = lv == 1
		case string:
			locked.Held = []byte(lv)
		default:
			return app.Rate{}, Locked{}, fmt.Errorf("rate limit: unexpected lock reply %T", v[4])
		}
	}
	return res, locked, nil
}

// seconds reads a duration the script gave in seconds; a negative one (-1: none) is zero.
func seconds(s string) time.Duration {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

func (l *Limiter) allowLocal(key string) app.Rate {
	l.mu.Lock()
	lim, ok := l.local[key]
	if !ok {
		if len(l.local) >= maxLocalKeys {
			l.local = map[string]*rate.Limiter{}
		}
		lim = rate.NewLimiter(rate.Limit(l.rate), l.burst)
		l.local[key] = lim
	}
	l.mu.Unlock()

	now := time.Now()
	allowed := lim.AllowN(now, 1)
	tokens := max(lim.TokensAt(now), 0)
	perToken := time.Duration(float64(time.Second) / float64(l.rate))
	res := app.Rate{
		Allowed:    allowed,
		Limit:      l.burst,
		Remaining:  int(math.Floor(tokens)),
		ResetAfter: time.Duration((float64(l.burst) - tokens) * float64(perToken)),
		Fallback:   true,
	}
	if !allowed {
		res.RetryAfter = time.Duration((1 - tokens) * float64(perToken))
	}
	return res
}
