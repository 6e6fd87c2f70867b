package app

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Fingerprinter makes the fingerprints of one type of command request (the Fingerprint of a Command).
// A fingerprint is made from the request's decoded, validated fields rather than from its bytes, so the
// body is parsed once, by the strict decoder that validates it. It is the SHA-256 of the request's
// canonical JSON: an object with its fields in ascending key order, no whitespace, strings escaped as
// encoding/json escapes them and integers in their decimal form. For a body whose keys are spelled as
// documented and whose values are not null, that is byte for byte what decoding the body and re-encoding
// it with sorted keys gives, so fingerprints stored by earlier gateways still match their retries.
//
// A field at its zero value ("" or 0) is left out: the strict decoder cannot tell a field sent empty or
// null from one not sent, and neither can the command service, so such requests are one request and
// share a fingerprint. Any two requests that decode to different values get different fingerprints.
//
// Every field of the request is in its fingerprint, under its JSON name, so a field added to a request
// can never be left out (two requests differing only in it would replay each other's answers).
type Fingerprinter[T any] struct {
	fields []canonicalField
}

// canonicalField is a field of a request: its JSON name, its index in the struct and whether it is a
// string (else an integer).
type canonicalField struct {
	key      string
	index    int
	isString bool
}

// NewFingerprinter returns the Fingerprinter of request type T, a struct of string and integer fields.
// Any other field panics: a programming error, which every route's tests reach when the router is built.
func NewFingerprinter[T any]() Fingerprinter[T] {
	t := reflect.TypeFor[T]()
	var fields []canonicalField
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if !sf.IsExported() || tag == "-" {
			continue
		}
		key, _, _ := strings.Cut(tag, ",")
		if key == "" {
			key = sf.Name
		}
		switch sf.Type.Kind() {
		case reflect.String:
			fields = append(fields, canonicalField{key: key, index: i, isString: true})
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			fields = append(fields, canonicalField{key: key, index: i})
		default:
			panic("app: fingerprint of " + t.String() + ": field " + sf.Name + " of kind " + sf.Type.Kind().String())
		}
	}
	slices.SortFunc(fields, func(a, b canonicalField) int { return strings.Compare(a.key, b.key) })
	for i := 1; i < len(fields); i++ {
		if fields[i].key == fields[i-1].key {
			panic("app: fingerprint of " + t.String() + ": two fields named " + strconv.Quote(fields[i].key))
		}
	}
	return Fingerprinter[T]{fields: fields}
}

// Of is the fingerprint of req, in hex.
func (f Fingerprinter[T]) Of(req *T) string {
	v := reflect.ValueOf(req).Elem()
	var c canonical
	for _, field := range f.fields {
		if field.isString {
			c.string(field.key, v.Field(field.index).String())
		} else {
			c.int(field.key, v.Field(field.index).Int())
		}
	}
	return c.fingerprint()
}

// canonical is the canonical JSON of a request, written field by field in ascending key order.
type canonical struct {
	buf []byte
}

func (c *canonical) string(key, value string) {
	if value == "" {
		return
	}
	c.key(key)
	c.buf = appendString(c.buf, value)
}

func (c *canonical) int(key string, value int64) {
	if value == 0 {
		return
	}
	c.key(key)
	c.buf = strconv.AppendInt(c.buf, value, 10)
}

func (c *canonical) key(key string) {
	if c.buf == nil {
		c.buf = make([]byte, 0, 160)
		c.buf = append(c.buf, '{')
	} else {
		c.buf = append(c.buf, ',')
	}
	c.buf = appendString(c.buf, key)
	c.buf = append(c.buf, ':')
}

// fingerprint is the SHA-256 of the canonical form, in hex.
func (c *canonical) fingerprint() string {
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
