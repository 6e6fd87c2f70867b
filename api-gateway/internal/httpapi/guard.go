package httpapi

import (
	"context"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"upi/api-gateway/internal/app"
	"upi/api-gateway/internal/auth"
	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/servicetoken"
)

type ctxKey int

const (
	clientKey ctxKey = iota
	operatorKey
)

// opsPrefix is where the operator routes live: every route under it is an operator's, every other /v1
// route a client's (authenticate).
const opsPrefix = "/v1/ops/"

// isOps reports whether p names a route under /v1/ops/ (or /v1/ops itself), however it is spelled: doubled
// slashes and dot segments do not take a path out of it.
func isOps(p string) bool {
	return p != "" && strings.HasPrefix(path.Clean("/"+p)+"/", opsPrefix)
}

// operatorName is the authenticated operator of a request under /v1/ops/.
func operatorName(ctx context.Context) string {
	name, _ := ctx.Value(operatorKey).(string)
	return name
}

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
//
// Roles do not mix: under /v1/ops/ only an operator's key (OPERATOR_KEYS) is accepted, everywhere else
// only a client's (API_KEYS); the other kind of valid key gets 403 FORBIDDEN. An operator's request
// carries the operator's name in its context (operatorName), never a client id.
func (s *server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, role, ok := s.Auth.Identify(r.Header.Get("Authorization"))
		if ok {
			opsRoute := isOps(r.URL.Path) || isOps(r.URL.RawPath)
			if opsRoute != (role == auth.Operator) {
				// A valid key in the wrong role is limited per IP, like a wrong key, then refused.
				if s.rated(w, s.App.AllowUnauthenticated(r.Context(), peerIP(r)), s.metrics.rateLimitedUnauthenticated) {
					s.metrics.forbidden.Inc()
					detail := "operator routes need an operator key"
					if !opsRoute {
						detail = "an operator key is not a client's"
					}
					problem.Write(w, problem.New(http.StatusForbidden, problem.CodeForbidden, detail))
				}
				return
			}
			if opsRoute {
				r.Header.Del(contract.HeaderClientID)
				r.Header.Del(servicetoken.HeaderOperatorID)
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), operatorKey, name)))
				return
			}
		}
		client := name
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
	who := limitKey(r.Context())
	return s.rated(w, s.App.Allow(r.Context(), who), s.metrics.rateLimitedBy(who))
}

// limitKey is whose rate limit a request counts against: its client's, or under /v1/ops/ its
// operator's, apart from every client's.
func limitKey(ctx context.Context) string {
	if op := operatorName(ctx); op != "" {
		return "operator/" + op
	}
	return clientID(ctx)
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
