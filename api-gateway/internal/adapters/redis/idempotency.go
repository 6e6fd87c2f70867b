package redis

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"upi/api-gateway/internal/app"
)

// opTimeout bounds the round trip that stores or releases a claim, so a slow Redis costs a request at
// most this much after its command.
const opTimeout = 300 * time.Millisecond

// redisKey hashes the scope so that any key a client chooses makes a fixed-length Redis key of one shape.
func redisKey(s app.Scope) string {
	h := sha256.Sum256([]byte(s.Client + "\x00" + s.Method + "\x00" + s.Path + "\x00" + s.Key))
	return "idem:v1:" + hex.EncodeToString(h[:])
}

// response is a stored final response, as the record holds it.
type response struct {
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
	Response *response `json:"response,omitempty"`
}

// Store is the gateway's fast path for idempotent POSTs (app.Idempotency): an atomic claim per (client,
// method, path, key), made in the round trip that checks the client's rate limit, the request's
// fingerprint, and the stored final response, written in one more round trip.
type Store struct {
	limiter *Limiter
	// pipe runs its scripts: the limiter's, so that claims and stored answers share pipelines, when both
	// use the same client.
	pipe    *pipeline
	lockTTL time.Duration
	ttl     time.Duration
}

// NewStore returns a Store that checks rate limits with limiter in the round trip of a claim, and whose
// claims expire after lockTTL (longer than the longest downstream call, so a live request never loses its
// claim; short enough that a crashed gateway's claim frees itself) and whose responses are kept for ttl.
func NewStore(rdb *goredis.Client, limiter *Limiter, lockTTL, ttl time.Duration) *Store {
	pipe := limiter.pipe
	if pipe.rdb != rdb {
		pipe = newPipeline(rdb, pipelineConcurrency)
	}
	return &Store{limiter: limiter, pipe: pipe, lockTTL: lockTTL, ttl: ttl}
}

// claim is the right to execute a request and store its outcome (app.Claim).
type claim struct {
	store *Store
	key   string
	value string
	fp    string
}

// Begin checks the client's rate limit and claims scope in one Redis round trip (app.Idempotency).
func (s *Store) Begin(ctx context.Context, limitKey string, scope app.Scope, fp string) (app.Rate, app.Outcome, error) {
	var owner [16]byte
	_, _ = rand.Read(owner[:]) // never fails (crypto/rand, Go 1.24 and later)
	c := &claim{store: s, key: redisKey(scope), value: inFlightValue(fp, hex.EncodeToString(owner[:])), fp: fp}
	res, locked := s.limiter.AllowAndLock(ctx, limitKey, Lock{Key: c.key, Value: c.value, TTL: s.lockTTL})
	switch {
	case !res.Allowed:
		return res, app.Outcome{}, nil
	case locked.Err != nil:
		return res, app.Outcome{}, fmt.Errorf("claim idempotency key: %w", locked.Err)
	case locked.Taken:
		return res, app.Outcome{Claim: c}, nil
	}
	var rec record
	if err := json.Unmarshal(locked.Held, &rec); err != nil {
		return res, app.Outcome{}, fmt.Errorf("decode idempotency record: %w", err)
	}
	switch {
	case rec.Fingerprint != fp:
		return res, app.Outcome{}, app.ErrReused
	case rec.State == stateDone && rec.Response != nil:
		return res, app.Outcome{Replay: &app.StoredResponse{Status: rec.Response.Status, Header: rec.Response.Header, Body: rec.Response.Body}}, nil
	default:
		return res, app.Outcome{}, app.ErrInFlight
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
var completeScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`)

// releaseScript deletes the claim only if it is still this request's.
var releaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// Complete stores resp as the outcome of the claimed request, if the claim is still this request's.
func (c *claim) Complete(ctx context.Context, resp app.StoredResponse) (bool, error) {
	stored := response{Status: resp.Status, Header: resp.Header, Body: resp.Body}
	final, err := json.Marshal(record{State: stateDone, Fingerprint: c.fp, Response: &stored})
	if err != nil {
		return false, fmt.Errorf("encode idempotency record: %w", err)
	}
	// The client may have gone away; the outcome must be stored anyway.
	n, err := c.store.pipe.run(context.WithoutCancel(ctx), opTimeout, completeScript, []string{c.key},
		c.value, final, c.store.ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("store idempotent response: %w", err)
	}
	return n == 1, nil
}

// Release gives the key up, if the claim is still this request's.
func (c *claim) Release(ctx context.Context) error {
	if err := c.store.pipe.run(context.WithoutCancel(ctx), opTimeout, releaseScript, []string{c.key}, c.value).Err(); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}
