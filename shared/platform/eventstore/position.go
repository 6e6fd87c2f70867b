package eventstore

import "upi/shared/contract/position"

// Position is a place in the global log, the pair the store reads by; its token format is the contract's
// (shared/contract/position), so that services which only pass tokens on need not link the store.
type Position = position.Position

// Start is the position before the first event.
var Start = position.Start

// ErrBadToken is returned by ParseToken for anything that is not a token this package made.
var ErrBadToken = position.ErrBadToken

// ParseToken decodes a token made by Position.Token.
func ParseToken(token string) (Position, error) { return position.Parse(token) }
