// Package vpa parses Virtual Payment Addresses (UPI ids) such as alice@okbank.
package vpa

import (
	"errors"
	"strings"
)

// MinLen and MaxLen bound a whole VPA, local part, "@" and handle together.
const (
	MinLen = 3
	MaxLen = 255
)

// ErrInvalid is returned for anything that is not localpart@handle with the allowed characters.
var ErrInvalid = errors.New("vpa must be localpart@handle: local part of a-z 0-9 . _ -, handle of a-z 0-9, 3 to 255 characters")

// VPA is a normalised (lower-cased) and validated address. The zero value is not valid.
type VPA struct{ s string }

// Parse lower-cases s and validates it.
func Parse(s string) (VPA, error) {
	if len(s) < MinLen || len(s) > MaxLen {
		return VPA{}, ErrInvalid
	}
	s = strings.ToLower(s)
	local, handle, ok := strings.Cut(s, "@")
	if !ok || local == "" || handle == "" {
		return VPA{}, ErrInvalid
	}
	for _, r := range local {
		if !isLower(r) && !isDigit(r) && r != '.' && r != '_' && r != '-' {
			return VPA{}, ErrInvalid
		}
	}
	for _, r := range handle {
		if !isLower(r) && !isDigit(r) {
			return VPA{}, ErrInvalid
		}
	}
	return VPA{s: s}, nil
}

// MustParse is Parse for constants and tests; it panics on an invalid address.
func MustParse(s string) VPA {
	v, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

// String returns the normalised address.
func (v VPA) String() string { return v.s }

// IsZero reports whether v is the zero value.
func (v VPA) IsZero() bool { return v.s == "" }

func isLower(r rune) bool { return r >= 'a' && r <= 'z' }
func isDigit(r rune) bool { return r >= '0' && r <= '9' }
