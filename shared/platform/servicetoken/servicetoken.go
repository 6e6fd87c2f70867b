// Package servicetoken authenticates the services to each other: every internal request carries a
// short-lived JWT (HS256, RFC 7519) that names the calling service (iss), the service called (aud), the
// client or operator it acts for, and the request it was made for (method, path, Idempotency-Key and a
// SHA-256 of the body, as DPoP's htm/htu/ath do in RFC 9449). Its id (jti) is accepted once.
//
// Keys: each calling service has a root secret of its own; the key of its tokens to one audience is
// derived from it, HMAC-SHA256(root, "upi-service-token/v1 " + audience) in hex (DeriveKey), and only that
// derived key is given to the audience. So the query service, which holds the gateway's key for itself,
// cannot mint the gateway's tokens to the command service, and a token made for one service is refused by
// another. docs/architecture.md says why tokens and not mutual TLS.
package servicetoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"upi/shared/platform/secrets"
)

// Service names: the issuers and audiences of tokens.
const (
	Gateway        = "api-gateway"
	CommandService = "command-service"
	QueryService   = "query-service"
	EventConsumers = "event-consumers"
)

// HeaderOperatorID names the operator a request acts for (an operator route reached through the
// gateway's /v1/ops/). Like X-Client-ID it is set by the caller and, on the service, rewritten from the
// caller's token: a value the token does not carry is removed.
const HeaderOperatorID = "X-Operator-ID"

// Lifetime is how long a token is valid after it is made; Leeway the clock skew allowed between hosts.
const (
	Lifetime = 30 * time.Second
	Leeway   = 5 * time.Second
)

// MinRootLength is the shortest root secret accepted outside development (32 bytes of entropy in hex is
// 64 characters; 32 characters of a random alphabet is the floor).
const MinRootLength = 32

// DeriveKey is the key of issuer's tokens to audience, from the issuer's root secret:
// hex(HMAC-SHA256(root, "upi-service-token/v1 " + audience)). scripts/service-keys.sh computes the same
// with openssl.
func DeriveKey(root, audience string) string {
	m := hmac.New(sha256.New, []byte(root))
	m.Write([]byte("upi-service-token/v1 " + audience))
	return hex.EncodeToString(m.Sum(nil))
}

// DevRoot is the root secret of service in development mode: derived from its name, so that the four
// binaries started with no setup trust each other, and known to everyone, so refused outside development.
func DevRoot(service string) string { return "upi-development-only-service-secret/" + service }

// DevPeers are the keys audience trusts in development mode: each caller's, derived from its DevRoot.
func DevPeers(audience string, callers ...string) map[string]string {
	out := make(map[string]string, len(callers))
	for _, c := range callers {
		out[c] = DeriveKey(DevRoot(c), audience)
	}
	return out
}

// ParsePeers reads "service=key,service=key" (SERVICE_PEERS): the derived key of each service the reader
// accepts calls from.
func ParsePeers(s string) (map[string]string, error) {
	out := map[string]string{}
	for i, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		name, key, ok := strings.Cut(pair, "=")
		name, key = strings.TrimSpace(name), strings.TrimSpace(key)
		if !ok || name == "" || key == "" {
			return nil, fmt.Errorf("entry %d is not service=key", i+1)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("service %s is given twice", name)
		}
		out[name] = key
	}
	return out, nil
}

// IsDevKey reports whether key is the development key of any caller to audience, or a development root.
func IsDevKey(audience, key string) bool {
	for _, c := range []string{Gateway, CommandService, QueryService, EventConsumers} {
		if key == DeriveKey(DevRoot(c), audience) || key == DevRoot(c) {
			return true
		}
	}
	return false
}

// Root is the signing root of service (SERVICE_KEY): value, or in development mode, unset, DevRoot.
// Outside development it must be set, at least MinRootLength long, and not a development root.
func Root(check *secrets.Check, dev bool, service, value string) string {
	if dev && value == "" {
		return DevRoot(service)
	}
	switch {
	case value == "":
		check.Failf("SERVICE_KEY is empty: give %s a secret of its own (scripts/service-keys.sh makes them)", service)
	case IsDevKey(service, value) || value == DevRoot(service):
		check.Failf("SERVICE_KEY is a development key: give %s a secret of its own (scripts/service-keys.sh)", service)
	case len(value) < MinRootLength:
		check.Failf("SERVICE_KEY is shorter than %d characters", MinRootLength)
	}
	return value
}

// Peers are the keys of the services audience accepts calls from (SERVICE_PEERS): value, or in
// development mode, unset, the development keys of callers. Outside development each must be set and none
// a development key.
func Peers(check *secrets.Check, dev bool, audience, value string, callers ...string) (map[string]string, error) {
	if dev && value == "" {
		return DevPeers(audience, callers...), nil
	}
	peers, err := ParsePeers(value)
	if err != nil {
		return nil, fmt.Errorf("config: SERVICE_PEERS: %w", err)
	}
	for _, c := range callers {
		key, ok := peers[c]
		switch {
		case !ok:
			check.Failf("SERVICE_PEERS has no key for %s: calls from it would all be refused (scripts/service-keys.sh)", c)
		case IsDevKey(audience, key) || IsDevKey(c, key):
			check.Failf("SERVICE_PEERS: the key of %s is a development key (scripts/service-keys.sh)", c)
		case len(key) < MinRootLength:
			check.Failf("SERVICE_PEERS: the key of %s is shorter than %d characters", c, MinRootLength)
		}
	}
	return peers, nil
}
