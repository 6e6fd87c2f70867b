package pii

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sort"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what the key table is read and written through (a pool or a transaction).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Keys reads the keys of subjects from subject_keys, one query: an erased subject, or one that never had a
// key, is absent from the answer. It caches nothing, so an erasure is seen by the very next read.
func Keys(ctx context.Context, q Querier, subjects ...string) (map[string][]byte, error) {
	if len(subjects) == 0 {
		return map[string][]byte{}, nil
	}
	out, err := scanKeys(q.Query(ctx, `select subject, key from subject_keys where subject = any($1) and key is not null`, subjects))
	if err != nil {
		return nil, fmt.Errorf("read subject keys: %w", err)
	}
	return out, nil
}

// scanKeys reads (subject, key) rows.
func scanKeys(rows pgx.Rows, err error) (map[string][]byte, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var s string
		var k []byte
		if err := rows.Scan(&s, &k); err != nil {
			return nil, err
		}
		out[s] = k
	}
	return out, rows.Err()
}

// Keyring is the command service's access to the keys: it makes a subject's key the first time one is
// needed and keeps the keys it has seen in memory, so that sealing costs no round trip once warm. A key
// cached by another replica may outlive its erasure there; what is sealed with it then can be read by
// nobody (the key is gone from the table), which is what erasure wants.
type Keyring struct {
	q     Querier
	cache *lru.Cache[string, []byte]
}

// NewKeyring returns a keyring over q, caching up to size keys (100,000 when size <= 0).
func NewKeyring(q Querier, size int) *Keyring {
	if size <= 0 {
		size = 100_000
	}
	c, _ := lru.New[string, []byte](size)
	return &Keyring{q: q, cache: c}
}

// Ensure returns the keys of subjects, making the missing ones (a random key, kept by the first of
// concurrent makers). An erased subject has none, ever: it is absent from the answer.
func (k *Keyring) Ensure(ctx context.Context, subjects ...string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(subjects))
	var missing []string
	for _, s := range subjects {
		if key, ok := k.cache.Get(s); ok {
			out[s] = key
		} else {
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	sort.Strings(missing)
	fresh := make([][]byte, len(missing))
	for i := range fresh {
		fresh[i] = make([]byte, KeySize)
		if _, err := rand.Read(fresh[i]); err != nil {
			return nil, fmt.Errorf("make subject key: %w", err)
		}
	}
	// One round trip: the keys this statement made, and those that existed before it. A key another
	// transaction made meanwhile is in neither (this statement's snapshot predates it): it is read again.
	found, err := scanKeys(k.q.Query(ctx, `
		with made as (
			insert into subject_keys (subject, key) select * from unnest($1::varchar[], $2::bytea[])
			on conflict (subject) do nothing
			returning subject, key)
		select subject, key from made
		union all
		select subject, key from subject_keys
		where subject = any($1) and key is not null and subject not in (select subject from made)`, missing, fresh))
	if err != nil {
		return nil, fmt.Errorf("make subject keys: %w", err)
	}
	if len(found) < len(missing) {
		var again []string
		for _, s := range missing {
			if _, ok := found[s]; !ok {
				again = append(again, s)
			}
		}
		more, err := Keys(ctx, k.q, again...)
		if err != nil {
			return nil, err
		}
		for s, key := range more {
			found[s] = key
		}
	}
	for s, key := range found {
		k.cache.Add(s, key)
		out[s] = key
	}
	return out, nil
}

// Erase destroys subject's key, leaving its tombstone (a subject that never had one gets the tombstone
// alone), and forgets it here. Erasing twice changes nothing.
func (k *Keyring) Erase(ctx context.Context, subject string) error {
	k.cache.Remove(subject)
	if _, err := k.q.Exec(ctx, `insert into subject_keys (subject, key, erased_at) values ($1, null, now())
		on conflict (subject) do update set key = null, erased_at = coalesce(subject_keys.erased_at, now())`, subject); err != nil {
		return fmt.Errorf("erase subject key %s: %w", subject, err)
	}
	k.cache.Remove(subject)
	return nil
}

// Forget drops subject's key from this keyring's memory.
func (k *Keyring) Forget(subject string) { k.cache.Remove(subject) }

// Fields are values to open for display: sealed strings, and JSON documents that may hold sealed strings
// (an audit trail's event data).
type Fields struct {
	Strings []*string
	JSON    []*json.RawMessage
}

// OpenFields opens every sealed value of f in place, reading the keys they need in one query (none when
// nothing is sealed): a value whose key was destroyed becomes Erased. erased names subjects whose
// plaintext must read Erased too (an erased account's holder name written before sealing existed).
func OpenFields(ctx context.Context, q Querier, f Fields) error {
	subjects := map[string]bool{}
	note := func(s string) {
		if subs, err := Subjects(s); err == nil {
			for _, sub := range subs {
				subjects[sub] = true
			}
		}
	}
	docs := make([]any, len(f.JSON))
	for _, p := range f.Strings {
		if p != nil && IsSealed(*p) {
			note(*p)
		}
	}
	for i, p := range f.JSON {
		if p == nil || !bytes.Contains(*p, []byte(Prefix)) {
			continue
		}
		if err := json.Unmarshal(*p, &docs[i]); err != nil {
			return fmt.Errorf("open sealed fields: %w", err)
		}
		walk(docs[i], func(s string) string { note(s); return s })
	}
	if len(subjects) == 0 {
		return nil
	}
	list := make([]string, 0, len(subjects))
	for s := range subjects {
		list = append(list, s)
	}
	keys, err := Keys(ctx, q, list...)
	if err != nil {
		return err
	}
	for _, p := range f.Strings {
		if p != nil && IsSealed(*p) {
			*p = OpenOrErased(*p, keys)
		}
	}
	for i, p := range f.JSON {
		if docs[i] == nil {
			continue
		}
		doc := walk(docs[i], func(s string) string {
			if IsSealed(s) {
				return OpenOrErased(s, keys)
			}
			return s
		})
		raw, err := json.Marshal(doc)
		if err != nil {
			return fmt.Errorf("open sealed fields: %w", err)
		}
		*p = raw
	}
	return nil
}

// walk replaces every string of a decoded JSON document by fn's answer.
func walk(v any, fn func(string) string) any {
	switch v := v.(type) {
	case string:
		return fn(v)
	case map[string]any:
		for k, x := range v {
			v[k] = walk(x, fn)
		}
	case []any:
		for i, x := range v {
			v[i] = walk(x, fn)
		}
	}
	return v
}
