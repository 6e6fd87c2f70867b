package idempotency

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
)

// Canonical builds a request's fingerprint from its decoded, validated fields rather than from its bytes,
// so the body is parsed once, by the strict decoder that validates it. The form is the canonical JSON of
// the request: an object with its fields in ascending key order, no whitespace, strings escaped as
// encoding/json escapes them and integers in their decimal form. For a body whose keys are spelled as
// documented and whose values are not null, that is byte for byte what decoding the body and re-encoding
// it with sorted keys gives, so fingerprints stored by earlier gateways still match their retries.
//
// A field at its zero value ("" or 0) is left out: the strict decoder cannot tell a field sent empty or
// null from one not sent, and neither can the command service, so such requests are one request and
// share a fingerprint. Any two requests that decode to different values get different fingerprints.
//
// Fields must be added in ascending key order; adding one out of order panics, a programming error that
// every route's tests reach.
type Canonical struct {
	buf  []byte
	last string
}

// String adds a string field.
func (c *Canonical) String(key, value string) {
	if value == "" {
		return
	}
	c.key(key)
	c.buf = appendString(c.buf, value)
}

// Int adds an integer field.
func (c *Canonical) Int(key string, value int64) {
	if value == 0 {
		return
	}
	c.key(key)
	c.buf = strconv.AppendInt(c.buf, value, 10)
}

func (c *Canonical) key(key string) {
	if c.buf == nil {
		c.buf = make([]byte, 0, 160)
		c.buf = append(c.buf, '{')
	} else {
		if key <= c.last {
			panic("idempotency: canonical field " + strconv.Quote(key) + " added after " + strconv.Quote(c.last))
		}
		c.buf = append(c.buf, ',')
	}
	c.last = key
	c.buf = appendString(c.buf, key)
	c.buf = append(c.buf, ':')
}

// Fingerprint is the SHA-256 of the canonical form, in hex.
func (c *Canonical) Fingerprint() string {
	if c.buf == nil {
		c.buf = append(c.buf, '{')
	}
	sum := sha256.Sum256(append(c.buf, '}'))
	return hex.EncodeToString(sum[:])
}

// appendString appends s as a JSON string, as encoding/json writes it: characters that need no escape
// are copied, and any string holding one that does (quote, backslash, control, <, >, &, non-ASCII) is
// left to encoding/json itself, so the two cannot drift apart.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			quoted, _ := json.Marshal(s) // a string always marshals
			return append(b, quoted...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
