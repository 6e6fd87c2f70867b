package eventstore_test

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"upi/shared/platform/eventstore"
)

func TestPositionTokenRoundTrip(t *testing.T) {
	for _, p := range []eventstore.Position{
		eventstore.Start,
		{TxID: 1, GlobalPosition: 1},
		{TxID: 7_000_000_000, GlobalPosition: 42},
		{TxID: math.MaxUint64, GlobalPosition: math.MaxInt64},
	} {
		tok := p.Token()
		got, err := eventstore.ParseToken(tok)
		if err != nil {
			t.Fatalf("ParseToken(%q) of %+v: %v", tok, p, err)
		}
		if got != p {
			t.Errorf("ParseToken(Token(%+v)) = %+v", p, got)
		}
		if p.String() != tok {
			t.Errorf("String() = %q, Token() = %q", p.String(), tok)
		}
	}
}

func TestPositionLess(t *testing.T) {
	for _, tc := range []struct {
		p, q eventstore.Position
		want bool
	}{
		{eventstore.Start, eventstore.Position{TxID: 1, GlobalPosition: 1}, true},
		{eventstore.Position{TxID: 5, GlobalPosition: 9}, eventstore.Position{TxID: 5, GlobalPosition: 10}, true},
		{eventstore.Position{TxID: 5, GlobalPosition: 10}, eventstore.Position{TxID: 5, GlobalPosition: 9}, false},
		// The transaction id decides before the global position: a late commit with a lower position
		// still sorts after an earlier transaction's events.
		{eventstore.Position{TxID: 5, GlobalPosition: 100}, eventstore.Position{TxID: 6, GlobalPosition: 1}, true},
		{eventstore.Position{TxID: 6, GlobalPosition: 1}, eventstore.Position{TxID: 5, GlobalPosition: 100}, false},
		{eventstore.Position{TxID: 5, GlobalPosition: 9}, eventstore.Position{TxID: 5, GlobalPosition: 9}, false},
	} {
		if got := tc.p.Less(tc.q); got != tc.want {
			t.Errorf("%+v.Less(%+v) = %v, want %v", tc.p, tc.q, got, tc.want)
		}
	}
}

func TestParseTokenRejectsGarbage(t *testing.T) {
	raw := func(n int) string { return base64.RawURLEncoding.EncodeToString(make([]byte, n)) }
	var negative [16]byte
	binary.BigEndian.PutUint64(negative[:8], 3)
	binary.BigEndian.PutUint64(negative[8:], 1<<63)
	valid := eventstore.Position{TxID: 3, GlobalPosition: 4}.Token()

	for name, tok := range map[string]string{
		"empty":             "",
		"not base64":        "!!!!not-a-token!!!!",
		"too short":         raw(15),
		"too long":          raw(17),
		"padded std base64": base64.StdEncoding.EncodeToString(make([]byte, 16)),
		"truncated":         valid[:len(valid)-1],
		"trailing junk":     valid + "A",
		"negative position": base64.RawURLEncoding.EncodeToString(negative[:]),
		"spaces":            " " + valid,
	} {
		if p, err := eventstore.ParseToken(tok); !errors.Is(err, eventstore.ErrBadToken) {
			t.Errorf("%s: ParseToken(%q) = %+v, %v; want ErrBadToken", name, tok, p, err)
		}
	}
}
