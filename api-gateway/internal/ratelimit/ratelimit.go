// Package ratelimit limits requests per client with GCRA in Redis, so the limit holds across gateway
// replicas, and falls back to a per-process limiter while Redis cannot answer.
package ratelimit

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// redisTimeout bounds one Redis round trip: a slow Redis must not slow every request down.
const redisTimeout = 250 * time.Millisecond

// maxLocalKeys bounds the fallback limiter's memory. When exceeded, its state is dropped: for a moment
// that grants fresh bursts, which is the lesser harm next to unbounded growth under a flood of client IPs.
const maxLocalKeys = 10000

// Result is the decision on one request and what the RateLimit-* headers say.
type Result struct {
	Allowed   bool
	Limit     int // the burst: requests allowed at once
	Remaining int
	// RetryAfter is how long until one more request is allowed (zero when allowed).
	RetryAfter time.Duration
	// ResetAfter is how long until the full burst is available again.
	ResetAfter time.Duration
	// Fallback is true when the decision was made in process because Redis did not answer.
	Fallback bool
}

// Limiter limits each key to a sustained rate with a burst.
type Limiter struct {
	redis *redis_rate.Limiter
	limit redis_rate.Limit
	log   *slog.Logger

	mu    sync.Mutex
	local map[string]*rate.Limiter
}

// New returns a Limiter allowing rps requests per second sustained and burst at once, per key.
func New(rdb *redis.Client, rps, burst int, log *slog.Logger) *Limiter {
	return &Limiter{
		redis: redis_rate.NewLimiter(rdb),
		limit: redis_rate.Limit{Rate: rps, Burst: burst, Period: time.Second},
		log:   log,
		local: map[string]*rate.Limiter{},
	}
}

// Allow decides one request for key. It never fails: with Redis down, the decision is made by a
// per-process limiter with the same settings (so N replicas allow up to N times the rate), which is
// neither failing open (no limit at all while Redis is down) nor failing closed (an outage of every
// client because a cache is down).
func (l *Limiter) Allow(ctx context.Context, key string) Result {
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	res, err := l.redis.Allow(rctx, key, l.limit)
	if err == nil {
		return Result{
			Allowed:    res.Allowed > 0,
			Limit:      l.limit.Burst,
			Remaining:  res.Remaining,
			RetryAfter: max(res.RetryAfter, 0),
			ResetAfter: max(res.ResetAfter, 0),
		}
	}
	l.log.WarnContext(ctx, "rate limiter: redis unavailable, limiting in process", "err", err)
	return l.allowLocal(key)
}

func (l *Limiter) allowLocal(key string) Result {
	l.mu.Lock()
	lim, ok := l.local[key]
	if !ok {
		if len(l.local) >= maxLocalKeys {
			l.local = map[string]*rate.Limiter{}
		}
		lim = rate.NewLimiter(rate.Limit(l.limit.Rate), l.limit.Burst)
		l.local[key] = lim
	}
	l.mu.Unlock()

	now := time.Now()
	allowed := lim.AllowN(now, 1)
	tokens := max(lim.TokensAt(now), 0)
	perToken := time.Duration(float64(time.Second) / float64(l.limit.Rate))
	res := Result{
		Allowed:    allowed,
		Limit:      l.limit.Burst,
		Remaining:  int(math.Floor(tokens)),
		ResetAfter: time.Duration((float64(l.limit.Burst) - tokens) * float64(perToken)),
		Fallback:   true,
	}
	if !allowed {
		res.RetryAfter = time.Duration((1 - tokens) * float64(perToken))
	}
	return res
}
