package httpapi

import (
	"context"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"upi/api-gateway/internal/app"
	"upi/shared/contract"
	"upi/shared/contract/problem"
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

// authenticate names the client of every /v1 request. Unauthenticated requests are rate-limited per
// client IP before they are refused. The IP is the connection's peer: the gateway trusts no forwarding
// header, as it is the public edge.
//
// An authenticated request is rate-limited further on, in one Redis round trip each: by limit for reads
// (and unknown routes), and by a command in the round trip that also claims its idempotency key.
func (s *server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client, ok := s.Auth.Authenticate(r.Header.Get("Authorization"))
		if !ok {
			if s.rated(w, s.App.AllowUnauthenticated(r.Context(), peerIP(r)), s.metrics.rateLimitedUnauthenticated) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="upi"`)
				problem.Write(w, problem.New(http.StatusUnauthorized, problem.CodeUnauthenticated,
					"a valid API key is required: Authorization: Bearer <key>"))
			}
			return
		}
		// Only the gateway names the client to the services.
		r.Header.Del(contract.HeaderClientID)
		next.ServeHTTP(w, r.WithContext(withClientID(r.Context(), client)))
	})
}

// limit rate-limits an authenticated client's request.
func (s *server) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.allow(w, r) {
			next.ServeHTTP(w, r)
		}
	})
}

// allow checks the authenticated client's rate limit, sets the RateLimit headers and answers 429 when
// the client is over it. It reports whether the request may go on.
func (s *server) allow(w http.ResponseWriter, r *http.Request) bool {
	client := clientID(r.Context())
	return s.rated(w, s.App.Allow(r.Context(), client), s.metrics.rateLimitedBy(client))
}

// rated sets the RateLimit headers of a decision and answers 429 if the request was not allowed,
// counting it in limited. It reports whether the request may go on.
func (s *server) rated(w http.ResponseWriter, res app.Rate, limited prometheus.Counter) bool {
	setRateLimitHeaders(w.Header(), res)
	if res.Allowed {
		return true
	}
	limited.Inc()
	p := problem.New(http.StatusTooManyRequests, problem.CodeRateLimited, "too many requests; retry after the time in Retry-After")
	p.RetryAfter = ceilSeconds(res.RetryAfter)
	problem.Write(w, p)
	return false
}

// The RateLimit header names in canonical form, so setting them skips canonicalising them each time.
var (
	headerRateLimitLimit     = textproto.CanonicalMIMEHeaderKey("RateLimit-Limit")
	headerRateLimitRemaining = textproto.CanonicalMIMEHeaderKey("RateLimit-Remaining")
	headerRateLimitReset     = textproto.CanonicalMIMEHeaderKey("RateLimit-Reset")
)

func setRateLimitHeaders(h http.Header, res app.Rate) {
	h[headerRateLimitLimit] = []string{strconv.Itoa(res.Limit)}
	h[headerRateLimitRemaining] = []string{strconv.Itoa(res.Remaining)}
	h[headerRateLimitReset] = []string{strconv.Itoa(ceilSecondsAllowZero(res.ResetAfter))}
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
