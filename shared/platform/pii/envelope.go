// Package pii seals the personal data of event payloads (holder names, notes, refund reasons) with a key
// per person, kept outside the log (table subject_keys), so that a person can be erased by destroying the
// key: crypto-shredding. The log keeps every event; what a destroyed key sealed reads as Erased forever.
//
// A sealed value is a string, so that a payload's field keeps its type (docs/events.md, "Sealed fields"):
//
//	pii:v1:<subjects>:<sealed>
//
// where <subjects> is the base64url (no padding) of each subject (an account's VPA), joined by ",", and
// <sealed> is the base64url of a 12-byte random nonce followed by the AES-256-GCM ciphertext and its tag.
// The additional data is "pii:v1:<subjects>", so a sealed value cannot be moved to other subjects. One
// subject's value is sealed with that subject's key; a value about two people (a payment's note names
// payer and payee) with HMAC-SHA256(key of the first, "upi-pii/v1 pair" || key of the second), so that
// erasing either of them erases it.
package pii

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Erased is what a sealed value whose key was destroyed reads as, everywhere.
const Erased = "[erased]"

// Prefix starts every sealed value.
const Prefix = "pii:v1:"

// KeySize is the size of a subject's key (AES-256).
const KeySize = 32

// ErrErased: a key the value was sealed with no longer exists (its subject was erased).
var ErrErased = errors.New("personal data erased")

var b64 = base64.RawURLEncoding

// Key is one subject's data key.
type Key struct {
	Subject string
	Bytes   []byte
}

// IsSealed reports whether s is a sealed value (any other string is plaintext, written before sealing
// existed or not personal).
func IsSealed(s string) bool { return strings.HasPrefix(s, Prefix) }

// Seal seals value for the subjects of keys (one or two, in the order given). An empty value stays empty:
// there is nothing to protect, and a payment without a note costs no cryptography.
func Seal(value string, keys ...Key) (string, error) {
	if value == "" {
		return "", nil
	}
	header, key, err := sealKey(keys)
	if err != nil {
		return "", err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(value)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return "", fmt.Errorf("seal: nonce: %w", err)
	}
	out = aead.Seal(out, out, []byte(value), []byte(header))
	return header + ":" + b64.EncodeToString(out), nil
}

// Subjects are the subjects a sealed value was sealed for.
func Subjects(sealed string) ([]string, error) {
	header, _, err := split(sealed)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, part := range strings.Split(strings.TrimPrefix(header, Prefix), ",") {
		s, err := b64.DecodeString(part)
		if err != nil {
			return nil, fmt.Errorf("open: subject: %w", err)
		}
		out = append(out, string(s))
	}
	return out, nil
}

// Open returns the plaintext of a sealed value, given its subjects' keys (keys[subject]; a missing or nil
// key is a destroyed one, and the answer ErrErased). A value that is not sealed is returned as it is.
func Open(value string, keys map[string][]byte) (string, error) {
	if !IsSealed(value) {
		return value, nil
	}
	subjects, err := Subjects(value)
	if err != nil {
		return "", err
	}
	ks := make([]Key, len(subjects))
	for i, s := range subjects {
		k := keys[s]
		if len(k) != KeySize {
			return "", ErrErased
		}
		ks[i] = Key{Subject: s, Bytes: k}
	}
	header, key, err := sealKey(ks)
	if err != nil {
		return "", err
	}
	_, body, _ := split(value)
	raw, err := b64.DecodeString(body)
	if err != nil {
		return "", fmt.Errorf("open: %w", err)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	if len(raw) < aead.NonceSize()+aead.Overhead() {
		return "", errors.New("open: sealed value too short")
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(header))
	if err != nil {
		return "", fmt.Errorf("open: %w", err)
	}
	return string(plain), nil
}

// OpenOrErased is Open for display: a destroyed key, or a value that cannot be opened, reads Erased.
func OpenOrErased(value string, keys map[string][]byte) string {
	plain, err := Open(value, keys)
	if err != nil {
		return Erased
	}
	return plain
}

// split cuts a sealed value into its header ("pii:v1:<subjects>") and its sealed body.
func split(sealed string) (header, body string, err error) {
	if !IsSealed(sealed) {
		return "", "", errors.New("open: not a sealed value")
	}
	i := strings.LastIndexByte(sealed, ':')
	if i < len(Prefix) {
		return "", "", errors.New("open: malformed sealed value")
	}
	return sealed[:i], sealed[i+1:], nil
}

// sealKey is the header and the AES key of a value sealed for keys' subjects.
func sealKey(keys []Key) (header string, key []byte, err error) {
	if len(keys) == 0 || len(keys) > 2 {
		return "", nil, fmt.Errorf("seal: %d subjects (one or two)", len(keys))
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		if len(k.Bytes) != KeySize {
			return "", nil, fmt.Errorf("seal: subject key of %d bytes", len(k.Bytes))
		}
		parts[i] = b64.EncodeToString([]byte(k.Subject))
	}
	key = keys[0].Bytes
	if len(keys) == 2 {
		m := hmac.New(sha256.New, keys[0].Bytes)
		m.Write([]byte("upi-pii/v1 pair"))
		m.Write(keys[1].Bytes)
		key = m.Sum(nil)
	}
	return Prefix + strings.Join(parts, ","), key, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return cipher.NewGCM(block)
}
