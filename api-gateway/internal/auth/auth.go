// Package auth authenticates the gateway's callers by bearer key: clients (API_KEYS) and operators
// (OPERATOR_KEYS), each a keyring that can be replaced while the gateway serves (key rotation).
package auth

import (
	"upi/shared/platform/keyring"
)

// Role is what a key authenticates: a client of the public API or an operator of the /v1/ops/ routes.
type Role int

// Roles.
const (
	Client Role = iota + 1
	Operator
)

// Authenticator maps bearer keys to clients and operators.
type Authenticator struct {
	clients   *keyring.Keyring
	operators *keyring.Keyring
}

// New builds an Authenticator of clients only, from key -> client id.
func New(clients map[string]string) *Authenticator {
	return NewKeyrings(keyring.FromMap(clients), keyring.New(nil))
}

// NewKeyrings builds an Authenticator of the clients' and the operators' keyrings (main keeps them
// current when their files change).
func NewKeyrings(clients, operators *keyring.Keyring) *Authenticator {
	return &Authenticator{clients: clients, operators: operators}
}

// Clients are the ids of the configured clients, each once.
func (a *Authenticator) Clients() []string { return a.clients.Names() }

// Authenticate returns the client id named by an Authorization header value ("Bearer <key>"); an
// operator's key is no client's.
func (a *Authenticator) Authenticate(authorization string) (client string, ok bool) {
	name, role, ok := a.Identify(authorization)
	if !ok || role != Client {
		return "", false
	}
	return name, true
}

// Identify returns who an Authorization header value names, and in which role. Both keyrings are
// searched whatever the key, each in constant time (keyring.Lookup), so the time taken does not say
// which kind of key was presented.
func (a *Authenticator) Identify(authorization string) (name string, role Role, ok bool) {
	key, ok := keyring.Bearer(authorization)
	if !ok {
		return "", 0, false
	}
	client, isClient := a.clients.Lookup(key)
	operator, isOperator := a.operators.Lookup(key)
	switch {
	case isClient:
		return client, Client, true
	case isOperator:
		return operator, Operator, true
	}
	return "", 0, false
}
