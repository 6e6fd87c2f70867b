package app

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Errors of the ports that are answers to the client. Any other error of Idempotency.Begin means Redis
// could not answer.
var (
	// ErrInFlight: the first request with this idempotency key has not finished.
	ErrInFlight = errors.New("a request with this idempotency key is in flight")
	// ErrReused: the idempotency key was used with a different body.
	ErrReused = errors.New("the idempotency key was used with a different request body")
	// ErrUnavailable: a service could not be reached or broke the connection. For a command, the effect
	// may or may not have happened, which is safe: the command service dedupes a retry by its key.
	ErrUnavailable = errors.New("downstream service unavailable")
	// ErrTimeout: a service did not answer within the call's deadline (same safety as ErrUnavailable).
	ErrTimeout = errors.New("downstream service did not answer in time")
)

// Rate is the decision on one request against its rate limit, and what the RateLimit-* headers say.
type Rate struct {
	Allowed   bool
	Limit     int // the burst: requests allowed at once
	Remaining int
	// RetryAfter is how long until one more request is allowed (zero when allowed).
	RetryAfter time.Duration
	// ResetAfter is how long until the full burst is available again.
	ResetAfter time.Duration
	// Fallback is true when the decision was made in process because Redis did not answer.
	Fallback bool
}

// Limiter limits requests per key, across the gateway's replicas.
type Limiter interface {
	// Allow decides one request for key. It never fails: when its store cannot answer, it decides in
	// process with the same settings (Rate.Fallback), which is neither failing open nor failing closed.
	Allow(ctx context.Context, key string) Rate
}

// Scope is what an idempotency key is unique within. Two clients may use the same key independently.
type Scope struct {
	Client, Method, Path, Key string
}

// StoredResponse is a command's final answer stored against its key, replayed byte for byte.
type StoredResponse struct {
	Status int
	Header map[string]string
	Body   []byte
}

// Claim is the right to execute a command and store its outcome.
type Claim interface {
	// Complete stores resp as the outcome of the claimed command. It reports false if the claim was no
	// longer held (expired, or its store was flushed), in which case nothing was written.
	Complete(ctx context.Context, resp StoredResponse) (bool, error)
	// Release gives the key up without storing an outcome, so a retry executes again.
	Release(ctx context.Context) error
}

// Outcome is what Idempotency.Begin found: a claim to execute, or a stored response to replay.
type Outcome struct {
	Claim  Claim
	Replay *StoredResponse
}

// Idempotency is the fast path of idempotent commands. It is not the only guard: the command service
// derives its effects' ids from the same scope, so a retry that gets past it still meets a unique
// constraint in PostgreSQL.
type Idempotency interface {
	// Begin checks the client's rate limit under limitKey and, only if the request is allowed, claims
	// scope for a request with fingerprint fp, in one round trip; when the key is already held it returns
	// the stored response of an earlier request with the same fingerprint. ErrReused and ErrInFlight are
	// answers; any other error means the store did not answer (the rate limit was then decided in
	// process). When the request is not allowed, nothing is claimed and the Outcome is empty.
	Begin(ctx context.Context, limitKey string, scope Scope, fp string) (Rate, Outcome, error)
}

// Call is one call to a downstream service.
type Call struct {
	// Path is the path and query to call, as validated.
	Path string
	// Client is the authenticated client, the only one the services hear of; RequestID ties the call to
	// the client's request in the logs.
	Client, RequestID string
	// Operator is the authenticated operator of a call made for a /v1/ops/ route (Client is then empty).
	Operator string
	// Key is a command's idempotency key ("" for a read), and Body its body as the client sent it.
	Key  string
	Body []byte
	// ContentType is the body's type when it is not a command's JSON (a reconciliation file).
	ContentType string
	// Timeout is the call's deadline.
	Timeout time.Duration
}

// Response is a service's full answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Service is a downstream service (command-service, query-service).
type Service interface {
	// Call returns the service's answer, whatever its status, or an error marked ErrUnavailable or
	// ErrTimeout. If ctx itself ends first (the client went away), ctx's error is returned.
	Call(ctx context.Context, c Call) (*Response, error)
}
