// Package idempotency is the gateway's fast path for idempotent POSTs: an atomic claim per (client,
// method, path, key) in Redis, made in the round trip that checks the client's rate limit, the request's
// fingerprint, and the stored final response, written in one more round trip. It is not the only guard:
// the command service derives its effects' ids from the same scope, so a retry that gets past Redis
// (flushed, evicted, down) still meets a unique constraint in PostgreSQL.
package idempotency

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"upi/api-gateway/internal/ratelimit"
)

// Errors of Begin that are answers to the client; any other error means Redis could not answer.
var (
	// ErrInFlight: the first request with this key has not finished.
	ErrInFlight = errors.New("a request with this idempotency key is in flight")
	// ErrReused: the key was used with a different body.
	ErrReused = errors.New("the idempotency key was used with a different request body")
)

// opTimeout bounds the round trip that stores or releases a claim, so a slow Redis costs a request at
// most this much after its command.
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

// Begin checks the client's rate limit under limitKey and, only if the request is allowed, claims scope
// for a request with fingerprint fp (from Canonical), in one Redis round trip; when the key is already
// held it returns the stored response of an earlier request with the same fingerprint. ErrReused and ErrInFlight are answers;
// any other error means Redis did not answer (the rate limit was then decided in process) and the caller
// decides how to go on without it. When the request is not allowed, nothing is claimed and the Outcome is
// empty.
func (s *Store) Begin(ctx context.Context, limiter *ratelimit.Limiter, limitKey string, scope Scope, fp string) (ratelimit.Result, Outcome, error) {
	var owner [16]byte
	_, _ = rand.Read(owner[:]) // never fails (crypto/rand, Go 1.24 and later)
	c := &Claim{store: s, key: scope.redisKey(), value: inFlightValue(fp, hex.EncodeToString(owner[:])), fp: fp}
	res, locked := limiter.AllowAndLock(ctx, limitKey, ratelimit.Lock{Key: c.key, Value: c.value, TTL: s.lockTTL})
	switch {
	case !res.Allowed:
		return res, Outcome{}, nil
	case locked.Err != nil:
		return res, Outcome{}, fmt.Errorf("claim idempotency key: %w", locked.Err)
	case locked.Taken:
		return res, Outcome{Claim: c}, nil
	}
	var rec record
	if err := json.Unmarshal(locked.Held, &rec); err != nil {
		return res, Outcome{}, fmt.Errorf("decode idempotency record: %w", err)
	}
	switch {
	case rec.Fingerprint != fp:
		return res, Outcome{}, ErrReused
	case rec.State == stateDone && rec.Response != nil:
		return res, Outcome{Replay: rec.Response}, nil
	default:
		return res, Outcome{}, ErrInFlight
	}
}

// inFlightValue is the claim's record, {"state":"in_flight","fingerprint":fp,"owner":owner}, the bytes
// json.Marshal would give, written out because a claim is made on every POST. A fingerprint and an owner
// are hex, which needs no escaping; anything else is marshalled.
func inFlightValue(fp, owner string) string {
	if !isHex(fp) {
		b, _ := json.Marshal(record{State: stateInFlight, Fingerprint: fp, Owner: owner})
		return string(b)
	}
	return `{"state":"` + stateInFlight + `","fingerprint":"` + fp + `","owner":"` + owner + `"}`
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
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
