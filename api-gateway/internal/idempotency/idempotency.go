// Package idempotency is the gateway's fast path for idempotent POSTs: an atomic claim per (client,
// method, path, key) in Redis, the request's fingerprint, and the stored final response. It is not the
// only guard: the command service derives its effects' ids from the same scope, so a retry that gets past
// Redis (flushed, evicted, down) still meets a unique constraint in PostgreSQL.
package idempotency

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Errors of Begin that are answers to the client; any other error means Redis could not answer.
var (
	// ErrInFlight: the first request with this key has not finished.
	ErrInFlight = errors.New("a request with this idempotency key is in flight")
	// ErrReused: the key was used with a different body.
	ErrReused = errors.New("the idempotency key was used with a different request body")
)

// opTimeout bounds one Redis round trip, so a slow Redis costs a request at most this much before the
// gateway goes on without it.
const opTimeout = 300 * time.Millisecond

// Scope is what a key is unique within. Two clients may use the same key independently.
type Scope struct {
	Client, Method, Path, Key string
}

// redisKey hashes the scope so that any key a client chooses makes a fixed-length Redis key of one shape.
func (s Scope) redisKey() string {
	h := sha256.Sum256([]byte(s.Client + "\x00" + s.Method + "\x00" + s.Path + "\x00" + s.Key))
	return "idem:v1:" + hex.EncodeToString(h[:])
}

// Response is a stored final response, replayed byte for byte.
type Response struct {
	Status int               `json:"status"`
	Header map[string]string `json:"header,omitempty"`
	Body   []byte            `json:"body"`
}

const (
	stateInFlight = "in_flight"
	stateDone     = "done"
)

// record is the value under a scope's key.
type record struct {
	State       string `json:"state"`
	Fingerprint string `json:"fingerprint"`
	// Owner makes each claim's value unique, so only the request that claimed the key can complete or
	// release it (compare-and-set in Lua), even after its lock expired and someone else claimed it.
	Owner    string    `json:"owner,omitempty"`
	Response *Response `json:"response,omitempty"`
}

// Store keeps claims and responses in Redis.
type Store struct {
	rdb     *redis.Client
	lockTTL time.Duration
	ttl     time.Duration
}

// NewStore returns a Store whose claims expire after lockTTL (longer than the longest downstream call,
// so a live request never loses its claim; short enough that a crashed gateway's claim frees itself) and
// whose responses are kept for ttl.
func NewStore(rdb *redis.Client, lockTTL, ttl time.Duration) *Store {
	return &Store{rdb: rdb, lockTTL: lockTTL, ttl: ttl}
}

// Claim is the right to execute a request and store its outcome.
type Claim struct {
	store *Store
	key   string
	value string
	fp    string
}

// Outcome of Begin: either a claim to execute, or a stored response to replay.
type Outcome struct {
	Claim  *Claim
	Replay *Response
}

// Begin claims scope for a request with fingerprint fp, or returns the stored response of an earlier
// request with the same fingerprint. ErrReused and ErrInFlight are answers; any other error means Redis
// did not answer and the caller decides how to go on without it.
func (s *Store) Begin(ctx context.Context, scope Scope, fp string) (Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	key := scope.redisKey()
	owner := make([]byte, 16)
	if _, err := rand.Read(owner); err != nil {
		return Outcome{}, fmt.Errorf("claim owner: %w", err)
	}
	value, err := json.Marshal(record{State: stateInFlight, Fingerprint: fp, Owner: hex.EncodeToString(owner)})
	if err != nil {
		return Outcome{}, fmt.Errorf("encode claim: %w", err)
	}
	// Between a failed SET NX and the GET the holder may release its claim (a 5xx); then claim again.
	for range 3 {
		ok, err := s.rdb.SetNX(ctx, key, value, s.lockTTL).Result()
		if err != nil {
			return Outcome{}, fmt.Errorf("claim idempotency key: %w", err)
		}
		if ok {
			return Outcome{Claim: &Claim{store: s, key: key, value: string(value), fp: fp}}, nil
		}
		raw, err := s.rdb.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return Outcome{}, fmt.Errorf("read idempotency key: %w", err)
		}
		var rec record
		if err := json.Unmarshal(raw, &rec); err != nil {
			return Outcome{}, fmt.Errorf("decode idempotency record: %w", err)
		}
		switch {
		case rec.Fingerprint != fp:
			return Outcome{}, ErrReused
		case rec.State == stateDone && rec.Response != nil:
			return Outcome{Replay: rec.Response}, nil
		default:
			return Outcome{}, ErrInFlight
		}
	}
	return Outcome{}, ErrInFlight
}

// completeScript replaces the claim with the final record only if the claim is still this request's.
var completeScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`)

// releaseScript deletes the claim only if it is still this request's.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// Complete stores resp as the outcome of the claimed request. It reports false if the claim was no
// longer held (expired, or Redis was flushed), in which case nothing was written.
func (c *Claim) Complete(ctx context.Context, resp Response) (bool, error) {
	final, err := json.Marshal(record{State: stateDone, Fingerprint: c.fp, Response: &resp})
	if err != nil {
		return false, fmt.Errorf("encode idempotency record: %w", err)
	}
	// The client may have gone away; the outcome must be stored anyway.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	n, err := completeScript.Run(ctx, c.store.rdb, []string{c.key}, c.value, final, c.store.ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("store idempotent response: %w", err)
	}
	return n == 1, nil
}

// Release gives the key up without storing an outcome, so a retry executes again.
func (c *Claim) Release(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	if err := releaseScript.Run(ctx, c.store.rdb, []string{c.key}, c.value).Err(); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

// Fingerprint is the SHA-256 of the canonical form of a JSON body: decoded and re-encoded with object
// keys sorted and no insignificant whitespace, so key order and formatting do not change it. Numbers keep
// their literal text (1 and 1.0 differ, as they do for the strict decoder that validates the body).
func Fingerprint(body []byte) string {
	canonical := body
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err == nil {
		if b, err := json.Marshal(v); err == nil {
			canonical = b
		}
	}
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}
