package servicetoken

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"upi/shared/contract"
	"upi/shared/contract/problem"
)

// Rule says which callers may use the routes under a path prefix. The first rule whose prefix matches
// decides; a path no rule matches is refused to everyone.
type Rule struct {
	Prefix  string
	Callers []string
}

// VerifierConfig is what a service that accepts calls needs.
type VerifierConfig struct {
	// Audience is this service's name: tokens made for another service are refused.
	Audience string
	// Peers are the derived keys of the services it accepts calls from, by name.
	Peers map[string]string
	// Rules say which of them may call which routes.
	Rules []Rule
	// MaxBody bounds the body read to check its digest (larger: 413); the handlers' own limits are below it.
	MaxBody int64
	// Registry receives service_auth_refused_total.
	Registry prometheus.Registerer
}

// Verifier checks the tokens of incoming calls.
type Verifier struct {
	cfg     VerifierConfig
	keys    map[string][]byte
	parser  *jwt.Parser
	seen    *seen
	refused *prometheus.CounterVec
	now     func() time.Time
}

// Reasons a call is refused, the label of service_auth_refused_total.
const (
	ReasonMissing   = "missing"       // no token (401)
	ReasonInvalid   = "invalid"       // malformed, forged (bad signature), unknown issuer, or made for another audience (401)
	ReasonExpired   = "expired"       // past its exp, or not yet valid (401)
	ReasonMismatch  = "mismatch"      // valid, but made for another request: method, path, body, key (401)
	ReasonReplayed  = "replayed"      // its jti was already used (401)
	ReasonForbidden = "wrong_service" // a valid caller on a route it may not call (403)
)

// NewVerifier returns the verifier of cfg.
func NewVerifier(cfg VerifierConfig) *Verifier {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 16 << 20
	}
	v := &Verifier{
		cfg:  cfg,
		keys: make(map[string][]byte, len(cfg.Peers)),
		seen: newSeen(),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "service_auth_refused_total",
			Help: "Internal calls refused for their service credential, by reason (missing, invalid, expired, mismatch, replayed, wrong_service).",
		}, []string{"reason"}),
		now: time.Now,
	}
	for name, key := range cfg.Peers {
		v.keys[name] = []byte(key)
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
	)
	for _, r := range []string{ReasonMissing, ReasonInvalid, ReasonExpired, ReasonMismatch, ReasonReplayed, ReasonForbidden} {
		v.refused.WithLabelValues(r) // every reason is exported from the start, at 0
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(v.refused)
	}
	return v
}

// Caller is who made an authenticated call.
type Caller struct {
	Service  string // the calling service (the token's issuer)
	Client   string // the client it acts for, if any
	Operator string // the operator it acts for, if any
}

type callerKey struct{}

// CallerOf returns the authenticated caller of a request that passed a Verifier.
func CallerOf(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// Middleware refuses every request but a valid, fresh, unused token of an allowed caller made for this
// very request, and passes the others on with X-Client-ID and X-Operator-ID set from the token (removed
// when it names none): a header the caller set outside its token is never believed.
//
// A request made inside the service for a caller an enclosing request was authenticated for (Vouch: an item
// of the gateway's command batch) carries no token of its own: it passes with that caller if the caller may
// call its route.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var (
			c      Caller
			reason string
			p      *problem.Problem
		)
		if vouched, ok := r.Context().Value(vouchedKey{}).(Caller); ok {
			c = vouched
			if !v.allowed(c.Service, r.URL.Path) {
				reason, p = ReasonForbidden, problem.New(http.StatusForbidden, problem.CodeForbidden, c.Service+" may not call this route")
			}
		} else {
			c, reason, p = v.verify(r)
		}
		if p != nil {
			v.refused.WithLabelValues(reason).Inc()
			problem.Write(w, p)
			return
		}
		setOrDelete(r.Header, contract.HeaderClientID, c.Client)
		setOrDelete(r.Header, HeaderOperatorID, c.Operator)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	})
}

type vouchedKey struct{}

// Vouch returns ctx for a request the service makes to itself for caller, on the strength of the enclosing
// request the Verifier authenticated (each item of a batch whose token bound the batch's body, and so each
// item's client): the Middleware lets it through as caller's, as far as the rules let caller call its route.
// Only code in the service can make such a context; nothing a peer sends can.
func Vouch(ctx context.Context, caller Caller) context.Context {
	return context.WithValue(ctx, vouchedKey{}, caller)
}

func setOrDelete(h http.Header, name, value string) {
	if value == "" {
		h.Del(name)
	} else {
		h.Set(name, value)
	}
}

func unauthenticated(detail string) *problem.Problem {
	return problem.New(http.StatusUnauthorized, problem.CodeUnauthenticated, detail)
}

func (v *Verifier) verify(r *http.Request) (Caller, string, *problem.Problem) {
	auth := r.Header.Get("Authorization")
	scheme, token, _ := strings.Cut(auth, " ")
	if token == "" || !strings.EqualFold(scheme, "Bearer") {
		return Caller{}, ReasonMissing, unauthenticated("internal routes need the calling service's token")
	}
	var c claims
	_, err := v.parser.ParseWithClaims(strings.TrimSpace(token), &c, func(t *jwt.Token) (any, error) {
		key, ok := v.keys[c.Issuer]
		if !ok {
			return nil, errors.New("unknown issuer")
		}
		return key, nil
	})
	switch {
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenUsedBeforeIssued), errors.Is(err, jwt.ErrTokenNotValidYet):
		return Caller{}, ReasonExpired, unauthenticated("the service token has expired")
	case err != nil:
		return Caller{}, ReasonInvalid, unauthenticated("the service token is not valid here")
	}
	now := v.now()
	if c.IssuedAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > Lifetime || c.ID == "" {
		return Caller{}, ReasonInvalid, unauthenticated("the service token is not valid here")
	}
	caller := Caller{Service: c.Issuer, Client: c.Client, Operator: c.Operator}
	if !v.allowed(caller.Service, r.URL.Path) {
		return Caller{}, ReasonForbidden, problem.New(http.StatusForbidden, problem.CodeForbidden,
			caller.Service+" may not call this route")
	}
	if c.Method != r.Method || c.Path != r.URL.EscapedPath() || c.IdemKey != r.Header.Get(contract.HeaderIdempotencyKey) {
		return Caller{}, ReasonMismatch, unauthenticated("the service token was made for another request")
	}
	if p := v.checkBody(r, c.Body); p != nil {
		return Caller{}, ReasonMismatch, p
	}
	// Last: only a token that passed everything else is remembered, so refused ones cannot fill the set.
	if !v.seen.add(c.ID, c.ExpiresAt.Add(Leeway), now) {
		return Caller{}, ReasonReplayed, unauthenticated("the service token was already used")
	}
	return caller, "", nil
}

func (v *Verifier) allowed(service, path string) bool {
	for _, rule := range v.cfg.Rules {
		if strings.HasPrefix(path, rule.Prefix) {
			return slices.Contains(rule.Callers, service)
		}
	}
	return false
}

// checkBody reads the body (bounded), compares its digest with the token's and puts it back for the
// handler. The token was verified first, so only an authenticated service can make this read anything.
func (v *Verifier) checkBody(r *http.Request, want string) *problem.Problem {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		// The signer leaves bdh out for a request without a body.
		if want != "" {
			return unauthenticated("the service token was made for another request")
		}
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, v.cfg.MaxBody+1))
	r.Body.Close()
	if err != nil {
		return problem.New(http.StatusBadRequest, problem.CodeMalformedJSON, "the body could not be read")
	}
	if int64(len(b)) > v.cfg.MaxBody {
		return problem.New(http.StatusRequestEntityTooLarge, problem.CodeBodyTooLarge, "the body is too large")
	}
	sum := sha256.Sum256(b)
	if want != base64.RawURLEncoding.EncodeToString(sum[:]) {
		return unauthenticated("the service token was made for another request")
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return nil
}

// seen is the set of token ids used and not yet expired.
type seen struct {
	mu        sync.Mutex
	ids       map[string]time.Time
	nextSweep time.Time
}

func newSeen() *seen { return &seen{ids: make(map[string]time.Time)} }

// add records id until expires and reports whether it was new. Expired ids are swept every second.
func (s *seen) add(id string, expires, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.After(s.nextSweep) {
		for k, exp := range s.ids {
			if now.After(exp) {
				delete(s.ids, k)
			}
		}
		s.nextSweep = now.Add(time.Second)
	}
	if _, dup := s.ids[id]; dup {
		return false
	}
	s.ids[id] = expires
	return true
}

// RequireOperator refuses (403) a call that acts for no operator: wrap a service's operator routes (those
// the gateway forwards from /v1/ops/) with it, inside the Verifier's middleware.
func RequireOperator(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := CallerOf(r.Context()); !ok || c.Operator == "" {
			problem.Write(w, problem.New(http.StatusForbidden, problem.CodeForbidden, "an operator route"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
