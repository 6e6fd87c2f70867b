// Package position is a place in the global event log and the opaque token clients see for it
// (X-Projection-Position, ?min_position=). It is part of the contract: the command service hands tokens out,
// the gateway checks them at the edge and the query service waits for them, so all three read one format,
// and none of them needs the event store's driver to do so.
package position

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// Position is a place in the global log: the appending transaction's id and the event's global position.
// The log is ordered by (TxID, GlobalPosition); GlobalPosition alone is not a safe cursor because
// positions are handed out at insert and become visible at commit, in another order.
type Position struct {
	TxID           uint64
	GlobalPosition int64
}

// Start is the position before the first event.
var Start = Position{}

// ErrBadToken is returned by Parse for anything that is not a token this package made.
var ErrBadToken = errors.New("malformed position token")

// Less reports whether p comes strictly before q in the log.
func (p Position) Less(q Position) bool {
	if p.TxID != q.TxID {
		return p.TxID < q.TxID
	}
	return p.GlobalPosition < q.GlobalPosition
}

// Token encodes p as the opaque string handed to clients.
func (p Position) Token() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], p.TxID)
	binary.BigEndian.PutUint64(b[8:], uint64(p.GlobalPosition))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// String is the token, so a Position logs as clients see it.
func (p Position) String() string { return p.Token() }

// Parse decodes a token made by Token.
func Parse(token string) (Position, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != 16 {
		return Position{}, ErrBadToken
	}
	p := Position{TxID: binary.BigEndian.Uint64(b[:8]), GlobalPosition: int64(binary.BigEndian.Uint64(b[8:]))}
	if p.GlobalPosition < 0 {
		return Position{}, fmt.Errorf("%w: negative position", ErrBadToken)
	}
	return p, nil
}
