// Package keyring holds named bearer keys (the gateway's client API keys, the operators' keys) as SHA-256
// digests, compares them in constant time, and can replace its keys while it serves (rotation without a
// restart: a file it watches, with the old and the new key listed together until the old one is removed).
package keyring

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"upi/shared/platform/secrets"
)

// DigestPrefix marks a key given as its digest: name=sha256:<64 hex digits>. A digest is what a
// configuration file should hold: the key itself then exists only with its holder.
const DigestPrefix = "sha256:"

// Entry is one key: its holder's name and the key's digest.
type Entry struct {
	Name   string
	Digest [sha256.Size]byte
	// Plain is the key as configured when it was given in clear (empty for a digest). It is kept only so
	// that a development default can be recognised (IsDefault); it is never logged.
	Plain string
}

// Parse reads "name=key,name=sha256:<hex>,...". A name may have several keys (a rotation in progress); a
// key (or digest) may belong to one name only. Empty entries are skipped.
func Parse(s string) ([]Entry, error) {
	var out []Entry
	for i, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		name, key, ok := strings.Cut(pair, "=")
		name, key = strings.TrimSpace(name), strings.TrimSpace(key)
		if !ok || name == "" || key == "" {
			return nil, fmt.Errorf("entry %d is not name=key", i+1)
		}
		e := Entry{Name: name}
		if hexDigest, isDigest := strings.CutPrefix(key, DigestPrefix); isDigest {
			b, err := hex.DecodeString(hexDigest)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("entry %d (%s): a digest is sha256: and 64 hex digits", i+1, name)
			}
			copy(e.Digest[:], b)
		} else {
			e.Digest, e.Plain = sha256.Sum256([]byte(key)), key
		}
		if slices.ContainsFunc(out, func(o Entry) bool { return o.Digest == e.Digest }) {
			return nil, fmt.Errorf("a key is given to more than one name (entry %d, %s)", i+1, name)
		}
		out = append(out, e)
	}
	return out, nil
}

// Digest is the configuration form of key: sha256:<hex>.
func Digest(key string) string {
	d := sha256.Sum256([]byte(key))
	return DigestPrefix + hex.EncodeToString(d[:])
}

// Keyring is a set of entries that can be replaced while it is read.
type Keyring struct {
	entries atomic.Pointer[[]Entry]
}

// New returns a keyring holding entries.
func New(entries []Entry) *Keyring {
	k := &Keyring{}
	k.entries.Store(&entries)
	return k
}

// Replace swaps in a new set of entries; requests already being checked finish with the old set.
func (k *Keyring) Replace(entries []Entry) { k.entries.Store(&entries) }

// Entries are the current entries.
func (k *Keyring) Entries() []Entry { return *k.entries.Load() }

// Names are the holders' names, each once, in configuration order.
func (k *Keyring) Names() []string {
	var names []string
	for _, e := range k.Entries() {
		if !slices.Contains(names, e.Name) {
			names = append(names, e.Name)
		}
	}
	return names
}

// Lookup returns the name holding key. Every entry is compared, whether or not an earlier one matched,
// and digests are compared rather than keys, so the time taken says nothing of which key (if any), or
// of its length.
func (k *Keyring) Lookup(key string) (name string, ok bool) {
	if key == "" {
		return "", false
	}
	digest := sha256.Sum256([]byte(key))
	for _, e := range k.Entries() {
		if subtle.ConstantTimeCompare(digest[:], e.Digest[:]) == 1 {
			name, ok = e.Name, true
		}
	}
	return name, ok
}

// Bearer returns the key of an Authorization header value "Bearer <key>" (the scheme in any case).
func Bearer(authorization string) (key string, ok bool) {
	scheme, key, found := strings.Cut(authorization, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	key = strings.TrimSpace(key)
	return key, key != ""
}

// Watch re-reads path every interval until ctx ends and replaces k's entries when the file's content
// changed and parses; a file that does not parse (a half-written edit) is logged and the old keys stay.
// check, if not nil, vets a new set before it is used (the refusal of development keys in production).
func Watch(ctx context.Context, log *slog.Logger, k *Keyring, what, path string, interval time.Duration,
	check func([]Entry) error) {
	var last []byte // nothing yet: the first look compares the file with the keys in use
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b, err := os.ReadFile(path)
		if err != nil {
			log.Warn("keys: cannot read the key file; the current keys stay", "keys", what, "err", err)
			continue
		}
		if string(b) == string(last) {
			continue
		}
		entries, err := Parse(strings.TrimSpace(string(b)))
		if err == nil && len(entries) == 0 {
			err = errors.New("no keys")
		}
		if err == nil && check != nil {
			err = check(entries)
		}
		if err != nil {
			log.Error("keys: the changed key file is refused; the current keys stay", "keys", what, "err", err)
			last = b
			continue
		}
		last = b
		if slices.Equal(entries, k.Entries()) {
			continue
		}
		k.Replace(entries)
		log.Info("keys: reloaded", "keys", what, "names", k.Names(), "count", len(entries))
	}
}

// FromMap is a keyring of key -> name pairs given in clear (tests, and callers that hold keys in memory).
func FromMap(keys map[string]string) *Keyring {
	entries := make([]Entry, 0, len(keys))
	for key, name := range keys {
		entries = append(entries, Entry{Name: name, Digest: sha256.Sum256([]byte(key)), Plain: key})
	}
	return New(entries)
}

// MinKeyLength is the shortest key accepted in clear outside development.
const MinKeyLength = 16

// Vet records in check what makes entries unsafe outside development: a key that is a development
// default or shorter than MinKeyLength (a digest cannot be vetted: whoever made it chose the key).
func Vet(check *secrets.Check, variable string, entries []Entry) {
	for _, e := range entries {
		switch {
		case e.Plain == "":
		case secrets.IsDevDefault(e.Plain):
			check.Failf("%s: the key of %s is a development default: give it a key of its own", variable, e.Name)
		case len(e.Plain) < MinKeyLength:
			check.Failf("%s: the key of %s is shorter than %d characters", variable, e.Name, MinKeyLength)
		}
	}
}

// DevOperatorKeys are the operator keys of development mode when OPERATOR_KEYS is unset.
const DevOperatorKeys = "operator=dev-operator-secret"

// Operators reads OPERATOR_KEYS: in development mode, unset, DevOperatorKeys; outside it, vetted (and
// unset means no operator: every admin route refuses).
func Operators(check *secrets.Check, dev bool, value string) ([]Entry, error) {
	if dev && strings.TrimSpace(value) == "" {
		value = DevOperatorKeys
	}
	entries, err := Parse(value)
	if err != nil {
		return nil, fmt.Errorf("config: OPERATOR_KEYS: %w", err)
	}
	Vet(check, "OPERATOR_KEYS", entries)
	return entries, nil
}
