// Package app is the gateway's application: the rate-limit decisions, and the flow that makes a command
// idempotent (claim its key, forward it, record its outcome, or replay the outcome recorded earlier). It
// knows Redis and the services only through the ports in ports.go, which internal/adapters implement.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"upi/shared/contract/problem"
)

// Default deadlines of downstream calls. A command takes milliseconds; five seconds is long enough for a
// loaded database and short enough that a client is never left hanging.
const (
	defaultCommandTimeout = 5 * time.Second
	defaultQueryTimeout   = 5 * time.Second
	// defaultMaxCommandsInFlight: at saturation on two cores the command service completes a few hundred
	// commands a second in groups of up to 64, so 64 under way is a group's worth and a fraction of a
	// second of work; more would only wait (docs/benchmarks.md, "Overload").
	defaultMaxCommandsInFlight = 64
)

// Config is what the gateway's application needs, wired in main.
type Config struct {
	Log         *slog.Logger
	Registry    prometheus.Registerer
	Limiter     Limiter
	Idempotency Idempotency
	Commands    Service
	Queries     Service
	// Ledger is the service that checks the books (event-consumers) for the operators.
	Ledger Service
	// Reconciler is the query service's POST endpoint: the check of a bank's reconciliation file.
	Reconciler Service
	// QueryWaitMax is the query service's cap on min_position waits (QUERY_WAIT_MAX).
	QueryWaitMax time.Duration
	// CommandTimeout and QueryTimeout are the deadlines of a downstream call (defaults above); a read's
	// deadline grows by the waits it asks for.
	CommandTimeout, QueryTimeout time.Duration
	// MaxCommandsInFlight bounds the commands this gateway has under way at once (default 64); one more
	// is answered 503 OVERLOADED at once (Admit).
	MaxCommandsInFlight int
}

// Gateway decides and forwards the requests the HTTP layer has authenticated and validated.
type Gateway struct {
	cfg     Config
	metrics metrics
	// inFlight holds a token for each command under way (Admit).
	inFlight chan struct{}
}

// ErrOverloaded: the gateway has as many commands under way as it admits (Config.MaxCommandsInFlight);
// this one was not run, and a retry with the same key after Retry-After is safe.
var ErrOverloaded = errors.New("too many commands in flight")

// Admit takes a place for one command among those under way, or reports false when they are all taken:
// the command is then answered OVERLOADED at once, before its body is read or Redis asked, so that an
// overload costs the gateway (and Redis, and the command service) next to nothing instead of queueing
// requests until they all time out. release gives the place back.
func (g *Gateway) Admit() (release func(), ok bool) {
	select {
	case g.inFlight <- struct{}{}:
		return func() { <-g.inFlight }, true
	default:
		g.metrics.shed.Inc()
		return nil, false
	}
}

// New returns the gateway's application and registers its metrics.
func New(cfg Config) *Gateway {
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = defaultCommandTimeout
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = defaultQueryTimeout
	}
	if cfg.MaxCommandsInFlight <= 0 {
		cfg.MaxCommandsInFlight = defaultMaxCommandsInFlight
	}
	return &Gateway{cfg: cfg, metrics: newMetrics(cfg.Registry), inFlight: make(chan struct{}, cfg.MaxCommandsInFlight)}
}

// limitKey is the rate-limit key of an authenticated client.
func limitKey(client string) string { return "client:" + client }

// Allow decides an authenticated client's request against the client's rate limit.
func (g *Gateway) Allow(ctx context.Context, client string) Rate {
	return g.decided(g.cfg.Limiter.Allow(ctx, limitKey(client)))
}

// AllowUnauthenticated decides a request without a valid API key against the limit of its peer's IP, so
// that guessing keys is as slow as any other traffic.
func (g *Gateway) AllowUnauthenticated(ctx context.Context, ip string) Rate {
	return g.decided(g.cfg.Limiter.Allow(ctx, "ip:"+ip))
}

func (g *Gateway) decided(rate Rate) Rate {
	if rate.Fallback {
		g.metrics.rateLimitFallback.Inc()
	}
	return rate
}

// Command is a client's command, authenticated and validated.
type Command struct {
	Client, RequestID string
	// Method, Path and Key are the idempotency scope; Path is also where the command is forwarded.
	Method, Path, Key string
	// Fingerprint identifies the body (Fingerprinter); Body is the body as the client sent it.
	Fingerprint string
	Body        []byte
	// Operator, for a POST under /v1/ops/, is the operator it is made for (Client is then ""): its key's
	// scope and rate limit are the operator's. ContentType is the body's type when it is not JSON.
	Operator, ContentType string
	// Reconcile sends the command to the query service's reconciliation check instead of the command
	// service (Config.Reconciler).
	Reconcile bool
}

// Answer is a command's answer: the command service's, or the one stored for an earlier request with
// the same key (Replay).
type Answer struct {
	Response *Response
	Replay   *StoredResponse
}

// Command runs a command: its client's rate limit and its idempotency claim in one Redis round trip, the
// call to the command service, and storing the service's answer against the key in one more. When the
// rate is not allowed nothing else happened. The errors are ErrInFlight and ErrReused (the key's answers)
// and the command service's ErrUnavailable and ErrTimeout (or ctx's error).
func (g *Gateway) Command(ctx context.Context, cmd Command) (Rate, Answer, error) {
	who := cmd.Client
	if cmd.Operator != "" {
		who = "operator/" + cmd.Operator
	}
	scope := Scope{Client: who, Method: cmd.Method, Path: cmd.Path, Key: cmd.Key}
	rate, out, err := g.cfg.Idempotency.Begin(ctx, limitKey(who), scope, cmd.Fingerprint)
	rate = g.decided(rate)
	switch {
	case !rate.Allowed:
		return rate, Answer{}, nil
	case errors.Is(err, ErrInFlight), errors.Is(err, ErrReused):
		return rate, Answer{}, err
	case err != nil:
		// Redis is a fast path, not the guard: the command service derives the effect's id from the same
		// (client, method, path, key) and answers a repeat with the original outcome, so going on without
		// Redis cannot create a second effect (docs/failure-handling.md).
		g.metrics.redisBypass.Inc()
		g.cfg.Log.WarnContext(ctx, "idempotency: redis unavailable, relying on the command service's dedupe", "err", err)
	case out.Replay != nil:
		g.metrics.replays.Inc()
		return rate, Answer{Replay: out.Replay}, nil
	}
	// A client that hangs up does not cancel its command: the call runs to its own deadline and its
	// outcome is stored, so the client's retry is a cheap replay instead of an unknown.
	target := g.cfg.Commands
	if cmd.Reconcile {
		if target = g.cfg.Reconciler; target == nil {
			g.release(ctx, out.Claim)
			return rate, Answer{}, fmt.Errorf("reconciliation: %w", ErrUnavailable)
		}
	}
	resp, err := target.Call(context.WithoutCancel(ctx), Call{
		Path: cmd.Path, Client: cmd.Client, Operator: cmd.Operator, RequestID: cmd.RequestID, Key: cmd.Key,
		Body: cmd.Body, ContentType: cmd.ContentType, Timeout: g.cfg.CommandTimeout,
	})
	if err != nil {
		g.release(ctx, out.Claim)
		return rate, Answer{}, err
	}
	g.record(ctx, out.Claim, resp)
	return rate, Answer{Response: resp}, nil
}

// record stores the command service's answer against the claimed key if it is the command's final
// outcome, and releases the key otherwise.
func (g *Gateway) record(ctx context.Context, claim Claim, resp *Response) {
	if claim == nil {
		return
	}
	if !storable(resp) {
		g.release(ctx, claim)
		return
	}
	stored, err := claim.Complete(ctx, StoredResponse{Status: resp.Status, Header: storedHeaders(resp), Body: resp.Body})
	if err != nil {
		g.cfg.Log.WarnContext(ctx, "idempotency: could not store the response; a retry will be deduped by the command service", "err", err)
	} else if !stored {
		g.cfg.Log.WarnContext(ctx, "idempotency: claim lost before the response was stored")
	}
}

func (g *Gateway) release(ctx context.Context, claim Claim) {
	if claim == nil {
		return
	}
	if err := claim.Release(ctx); err != nil {
		// The claim expires by itself after the lock TTL; until then a retry gets 409 with Retry-After.
		g.cfg.Log.WarnContext(ctx, "idempotency: could not release the key", "err", err)
	}
}

// storable reports whether a command's answer is its final outcome, to be stored against the key: 2xx
// and business 4xx are; a 5xx is not (the key is released and a retry executes again, safely), nor are
// answers about the request's timing rather than its outcome (in flight, throttled), nor a key-reuse
// refusal from the command service, which is about another body than the one that holds the key.
func storable(resp *Response) bool {
	switch {
	case resp.Status >= 500, resp.Status == http.StatusRequestTimeout, resp.Status == http.StatusTooManyRequests:
		return false
	case resp.Status < 400:
		return true
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != problem.ContentType {
		return true
	}
	var p struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(resp.Body, &p) != nil {
		return true
	}
	switch p.Code {
	case problem.CodeIdempotencyKeyInUse, problem.CodeIdempotencyKeyReused, problem.CodeUnauthenticated,
		problem.CodeDependencyUnavailable, problem.CodeRateLimited:
		return false
	}
	return true
}

// storedHeaders are the headers replayed with a stored response.
func storedHeaders(resp *Response) map[string]string {
	h := map[string]string{}
	for _, name := range []string{"Content-Type", "Location", "Cache-Control"} {
		if v := resp.Header.Get(name); v != "" {
			h[name] = v
		}
	}
	return h
}

// Query is a client's read, authenticated and validated.
type Query struct {
	Client, RequestID string
	// Operator, for a read of a /v1/ops/ route, is the operator it is made for (Client is then "").
	Operator string
	// Path is the path and query to forward.
	Path string
	// MinPosition is whether the read waits for a position (?min_position=), Wait how long it long-polls
	// (?wait=).
	MinPosition bool
	Wait        time.Duration
}

// LedgerCheckTimeout bounds the operators' ledger check: a replay of the whole log.
const LedgerCheckTimeout = 5 * time.Minute

// LedgerCheck forwards an operator's ledger check (GET /v1/ops/ledger-check) to the consumers' service.
func (g *Gateway) LedgerCheck(ctx context.Context, q Query) (*Response, error) {
	if g.cfg.Ledger == nil {
		return nil, fmt.Errorf("ledger check: %w", ErrUnavailable)
	}
	return g.cfg.Ledger.Call(ctx, Call{Path: q.Path, Operator: q.Operator, RequestID: q.RequestID, Timeout: LedgerCheckTimeout})
}

// Query forwards a read to the query service. The call's deadline grows by the waits the read asks for,
// so a long-poll is not cut short.
func (g *Gateway) Query(ctx context.Context, q Query) (*Response, error) {
	timeout := g.cfg.QueryTimeout + q.Wait
	if q.MinPosition {
		timeout += g.cfg.QueryWaitMax
	}
	return g.cfg.Queries.Call(ctx, Call{Path: q.Path, Client: q.Client, Operator: q.Operator, RequestID: q.RequestID, Timeout: timeout})
}
