package servicetoken

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"upi/shared/contract"
)

// claims are a token's claims: the registered ones, and the request it was made for.
type claims struct {
	jwt.RegisteredClaims
	Client   string `json:"cid,omitempty"` // the client the call acts for (X-Client-ID)
	Operator string `json:"opr,omitempty"` // the operator the call acts for (X-Operator-ID)
	Method   string `json:"htm"`           // the request's method
	Path     string `json:"htu"`           // the request's path, escaped as sent
	IdemKey  string `json:"idk,omitempty"` // its Idempotency-Key
	Body     string `json:"bdh,omitempty"` // base64url SHA-256 of its body, when it has one
}

// Signer makes the tokens of one calling service.
type Signer struct {
	issuer string
	root   string
	keys   sync.Map // audience -> derived key
	now    func() time.Time
}

// NewSigner returns the signer of issuer, whose root secret is root.
func NewSigner(issuer, root string) *Signer {
	return &Signer{issuer: issuer, root: root, now: time.Now}
}

// Transport returns a RoundTripper that sends every request through next with a token in its
// Authorization header, for the audience its context names (WithAudience) or else for audience, binding
// the request's X-Client-ID, X-Operator-ID, Idempotency-Key, method, path and body. A request whose body
// cannot be read again (no GetBody), or with no audience, is not sent.
func (s *Signer) Transport(audience string, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{signer: s, audience: audience, next: next}
}

type audienceKey struct{}

// WithAudience names the service a request made with ctx is for, when one transport serves several.
func WithAudience(ctx context.Context, audience string) context.Context {
	return context.WithValue(ctx, audienceKey{}, audience)
}

// key is the signing key for audience, derived once.
func (s *Signer) key(audience string) []byte {
	if k, ok := s.keys.Load(audience); ok {
		return k.([]byte)
	}
	k := []byte(DeriveKey(s.root, audience))
	s.keys.Store(audience, k)
	return k
}

type transport struct {
	signer   *Signer
	audience string
	next     http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	audience := t.audience
	if a, ok := req.Context().Value(audienceKey{}).(string); ok && a != "" {
		audience = a
	}
	token, err := t.token(req, audience)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	// A RoundTripper must not change the request it was given.
	out := req.Clone(req.Context())
	out.Header.Set("Authorization", "Bearer "+token)
	return t.next.RoundTrip(out)
}

func (t *transport) token(req *http.Request, audience string) (string, error) {
	if audience == "" {
		return "", fmt.Errorf("service token: no audience for %s %s", req.Method, req.URL.Redacted())
	}
	now := t.signer.now()
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.signer.issuer,
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(Lifetime)),
			ID:        newID(),
		},
		Client:   req.Header.Get(contract.HeaderClientID),
		Operator: req.Header.Get(HeaderOperatorID),
		Method:   req.Method,
		Path:     req.URL.EscapedPath(),
		IdemKey:  req.Header.Get(contract.HeaderIdempotencyKey),
	}
	if req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return "", fmt.Errorf("service token: the body of %s %s cannot be read twice", req.Method, c.Path)
		}
		body, err := req.GetBody()
		if err != nil {
			return "", fmt.Errorf("service token: %w", err)
		}
		h := sha256.New()
		_, err = io.Copy(h, body)
		body.Close()
		if err != nil {
			return "", fmt.Errorf("service token: %w", err)
		}
		c.Body = base64.RawURLEncoding.EncodeToString(h.Sum(nil))
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.signer.key(audience))
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// MintAt returns the token issuer's transport would send with req to audience at time at: for tools and
// tests (the attack suite makes an expired one with it).
func MintAt(issuer, root, audience string, req *http.Request, at time.Time) (string, error) {
	s := NewSigner(issuer, root)
	s.now = func() time.Time { return at }
	return (&transport{signer: s}).token(req, audience)
}
