package httpapi

import (
	"context"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"

	"upi/api-gateway/internal/ratelimit"
	"upi/shared/contract"
	"upi/shared/problem"
)

type ctxKey int

const clientKey ctxKey = iota

func withClientID(ctx context.Context, client string) context.Context {
	return context.WithValue(ctx, clientKey, client)
}

// clientID is the authenticated client of the request.
func clientID(ctx context.Context) string {
	id, _ := ctx.Value(clientKey).(string)
	return id
}

// guard authenticates and rate-limits every /v1 request. Unauthenticated requests are limited too, per
// client IP, so guessing keys is as slow as any other traffic. The IP is the connection's peer: the
// gateway trusts no forwarding header, as it is the public edge.
func (s *server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client, ok := s.Auth.Authenticate(r.Header.Get("Authorization"))
		limitKey, label := "client:"+client, client
		if !ok {
			limitKey, label = "ip:"+peerIP(r), "unauthenticated"
		}
		res := s.Limiter.Allow(r.Context(), limitKey)
		if res.Fallback {
			s.metrics.rateLimitFallback.Inc()
		}
		setRateLimitHeaders(w.Header(), res)
		if !res.Allowed {
			s.metrics.rateLimited.WithLabelValues(label).Inc()
			p := problem.New(http.StatusTooManyRequests, problem.CodeRateLimited, "too many requests; retry after the time in Retry-After")
			p.RetryAfter = ceilSeconds(res.RetryAfter)
			problem.Write(w, p)
			return
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="upi"`)
			problem.Write(w, problem.New(http.StatusUnauthorized, problem.CodeUnauthenticated,
				"a valid API key is required: Authorization: Bearer <key>"))
			return
		}
		// Only the gateway names the client to the services.
		r.Header.Del(contract.HeaderClientID)
		next.ServeHTTP(w, r.WithContext(withClientID(r.Context(), client)))
	})
}

func setRateLimitHeaders(h http.Header, res ratelimit.Result) {
	h.Set("RateLimit-Limit", strconv.Itoa(res.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(res.Remaining))
	h.Set("RateLimit-Reset", strconv.Itoa(ceilSecondsAllowZero(res.ResetAfter)))
}

// ceilSeconds rounds d up to whole seconds, at least 1: Retry-After: 0 would invite an immediate retry.
func ceilSeconds(d time.Duration) int {
	return max(1, ceilSecondsAllowZero(d))
}

func ceilSecondsAllowZero(d time.Duration) int {
	return int(math.Ceil(d.Seconds()))
}

func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
