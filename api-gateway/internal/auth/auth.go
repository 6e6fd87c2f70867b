// Package auth authenticates clients by API key.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"slices"
	"strings"
)

// Authenticator maps bearer API keys to client ids.
type Authenticator struct {
	keys []entry
}

// entry holds a key's digest rather than the key: comparing fixed-length digests in constant time hides
// both the key's content and its length from timing.
type entry struct {
	digest [sha256.Size]byte
	client string
}

// New builds an Authenticator from key -> client id (config.Clients).
func New(clients map[string]string) *Authenticator {
	a := &Authenticator{}
	for key, client := range clients {
		a.keys = append(a.keys, entry{digest: sha256.Sum256([]byte(key)), client: client})
	}
	return a
}

// Clients are the ids of the configured clients, each once.
func (a *Authenticator) Clients() []string {
	var ids []string
	for _, e := range a.keys {
		if !slices.Contains(ids, e.client) {
			ids = append(ids, e.client)
		}
	}
	return ids
}

// Authenticate returns the client id named by an Authorization header value ("Bearer <key>"). Every
// configured key is compared, whether or not an earlier one matched, so the time taken does not depend on
// which key (if any) was presented.
func (a *Authenticator) Authenticate(authorization string) (client string, ok bool) {
	scheme, key, found := strings.Cut(authorization, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return "", false
	}
	digest := sha256.Sum256([]byte(key))
	for _, e := range a.keys {
		if subtle.ConstantTimeCompare(digest[:], e.digest[:]) == 1 {
			client, ok = e.client, true
		}
	}
	return client, ok
}
