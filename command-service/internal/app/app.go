// Package app runs the commands of the write side: it loads an aggregate by replaying its stream (from a
// snapshot when there is one), lets the domain decide, and appends the outcome under the stream's lock with
// eventstore.Execute. Every id it appends is deterministic, so that a repeated command meets its own
// earlier outcome instead of having a second effect.
package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/command-service/internal/domain"
	"upi/shared/contract/events"
	"upi/shared/contract/money"
	"upi/shared/platform/eventstore"
	"upi/shared/platform/pii"
)

// Failures of the application layer, beside the domain's.
var (
	// ErrIdempotencyKeyReused: the key was used before, for a different request.
	ErrIdempotencyKeyReused = errors.New("the idempotency key was already used for a different request")
	// ErrPayeeNotFound: the payment names a payee that does not exist.
	ErrPayeeNotFound = errors.New("payee not found")
	// ErrStepPrecondition: a workflow step was asked for before the log allows it.
	ErrStepPrecondition = errors.New("step precondition not met")
	// ErrUnavailable: the database failed or could not be reached. The command's transaction did not
	// commit, or committed and will be found by a retry through its deterministic id: a retry is safe.
	// The event store marks these (eventstore.ErrUnavailable); the app never looks at driver errors.
	ErrUnavailable = eventstore.ErrUnavailable
	// ErrOverloaded: the command was shed without running (too many waiting); a retry is safe.
	ErrOverloaded = eventstore.ErrOverloaded
)

// Service runs every command. Client commands go through a Committer, so that concurrent ones share
// transactions; a batch of workflow steps is one group of its own.
type Service struct {
	store  *eventstore.Store
	commit *eventstore.Committer
	limits domain.Limits
	// refundWindow is how long after its initiation a payment may be refunded.
	refundWindow time.Duration
	// rrns gives the RRNs of debits and withdrawals.
	rrns *RRNs
	// money is how money enters and leaves: the deposit cap and the banks' settlement shards.
	money MoneyTerms
	// keys are the people's data keys, which seal the personal fields of payloads (erasure.go).
	keys *pii.Keyring
	// mandates are the rules of mandates' debits (nil: domain.DefaultMandateRules; see mandates.go).
	mandates *MandateSettings
	// complaints are the complaint window and the merchants' time to answer (complaints.go).
	complaints ComplaintTerms
}

// MoneyTerms are the rules of money entering and leaving the system.
type MoneyTerms struct {
	// DepositDailyCap bounds an account's deposits over the rolling 24 hours (0: no cap).
	DepositDailyCap money.Paise
	// SettlementShards is how many streams each bank's settlement account is spread over.
	SettlementShards int
}

// DefaultMoneyTerms: a cap of Rs 10,00,000 a day, and 64 shards per bank.
var DefaultMoneyTerms = MoneyTerms{DepositDailyCap: 100_000_000, SettlementShards: 64}

// New returns the service on an event store, debiting payers under limits.
func New(store *eventstore.Store, limits domain.Limits) *Service {
	return &Service{store: store, commit: eventstore.NewCommitter(store, eventstore.CommitterOptions{Timeout: commandTimeout}),
		limits: limits, refundWindow: DefaultRefundWindow, complaints: DefaultComplaintTerms, rrns: NewRRNs(store.Pool(), RRNOptions{}),
		money: DefaultMoneyTerms, keys: pii.NewKeyring(store.Pool(), 0)}
}

// WithMoneyTerms sets the deposit cap and the settlement shards (DEPOSIT_DAILY_CAP_PAISE, SETTLEMENT_SHARDS).
func (s *Service) WithMoneyTerms(t MoneyTerms) *Service {
	if t.SettlementShards <= 0 {
		t.SettlementShards = 1
	}
	s.money = t
	return s
}

// WithRRNs sets the RRN allocator (tests shrink its spaces).
func (s *Service) WithRRNs(r *RRNs) *Service {
	s.rrns = r
	return s
}

// WithCommitter sets how client commands are grouped and shed: opts.Concurrency is COMMIT_GROUPS,
// MaxQueue and MaxWait bound what waits (eventstore.CommitterOptions); its Timeout is the service's.
func (s *Service) WithCommitter(opts eventstore.CommitterOptions) *Service {
	opts.Timeout = commandTimeout
	s.commit = eventstore.NewCommitter(s.store, opts)
	return s
}

// WithCommitGroups sets how many groups of client commands may run at once (COMMIT_GROUPS; see
// eventstore.CommitterOptions.Concurrency).
func (s *Service) WithCommitGroups(n int) *Service {
	return s.WithCommitter(eventstore.CommitterOptions{Concurrency: n})
}

// WithRefundWindow sets how long after its initiation a payment may be refunded (REFUND_WINDOW).
func (s *Service) WithRefundWindow(d time.Duration) *Service {
	s.refundWindow = d
	return s
}

// Caller is who sent a command and under which idempotency key.
type Caller struct {
	ClientID       string
	IdempotencyKey string
	RequestID      string
	// TraceParent is the W3C traceparent of the request's span ("" when not traced), kept in the events'
	// metadata.
	TraceParent string
}

// AccountSnapshotEvery bounds how many events loading an account replays: a stream with 100k events loads
// from its snapshot and fewer than this many events after it. The tail is replayed under the stream's
// lock, so it sets how fast a hot account takes commands: measured with 16 clients depositing into one
// account, 100 gave four times the throughput of 500, for one small snapshot upsert per 100 appends
// (docs/benchmarks-command.md).
const AccountSnapshotEvery = 100

// accountSnapshotSchema versions the JSON of domain.Account in snapshots; bump it when Account changes.
// Schema 2: the account's kind and its rolling window of debits (limits). Schema 3: its deposits of the
// last 24 hours (the daily deposit cap).
const accountSnapshotSchema = 3

// AccountAggregate is how the event store rebuilds an account.
func AccountAggregate() eventstore.Aggregate[domain.Account] {
	return eventstore.Aggregate[domain.Account]{
		Type:           events.AggregateAccount,
		Evolve:         evolveAt(domain.Account.Evolve),
		SnapshotEvery:  AccountSnapshotEvery,
		SnapshotSchema: accountSnapshotSchema,
	}
}

// SettlementAggregate is how the event store rebuilds a shard of a bank's settlement account. A shard takes
// one event per deposit or withdrawal of its accounts, so it is snapshotted like an account.
func SettlementAggregate() eventstore.Aggregate[domain.Settlement] {
	return eventstore.Aggregate[domain.Settlement]{
		Type:           events.AggregateSettlement,
		Evolve:         evolveAt(domain.Settlement.Evolve),
		SnapshotEvery:  AccountSnapshotEvery,
		SnapshotSchema: 1,
	}
}

// PaymentAggregate is how the event store rebuilds a payment. A payment's stream stays a handful of
// events long, so it is never snapshotted.
func PaymentAggregate() eventstore.Aggregate[domain.Payment] {
	return eventstore.Aggregate[domain.Payment]{Type: events.AggregatePayment, Evolve: evolveAt(domain.Payment.Evolve)}
}

// evolveAt folds a stored event into an aggregate whose Evolve takes the event's payload and time.
func evolveAt[S any](apply func(S, events.Payload, time.Time) (S, error)) func(S, eventstore.Event) (S, error) {
	return func(state S, e eventstore.Event) (S, error) {
		p, err := eventstore.PayloadOf(e, events.Decode)
		if err != nil {
			return state, err
		}
		return apply(state, p, e.CreatedAt)
	}
}

// evolvePayload folds a stored event into an aggregate whose Evolve takes only the event's payload.
func evolvePayload[S any](apply func(S, events.Payload) (S, error)) func(S, eventstore.Event) (S, error) {
	return evolveAt(func(state S, p events.Payload, _ time.Time) (S, error) { return apply(state, p) })
}

// newEvent is a decision's outcome as the single event a command appends.
func newEvent(id uuid.UUID, p events.Payload, meta events.Metadata) []eventstore.NewEvent {
	return []eventstore.NewEvent{{ID: id, Type: p.EventType(), Data: p, Metadata: meta}}
}

// eventOp is the op of a command that appends one event, with id, on stream: the event decide yields
// from the stream's state and what the op read. It is deduplicated on id, so that a repeat of the command
// finds its event instead of deciding again.
func eventOp[S any](agg eventstore.Aggregate[S], stream string, id uuid.UUID,
	decide func(state S, r eventstore.Reads) (events.Payload, events.Metadata, error)) *eventstore.Op {
	op := eventstore.NewOp(agg, stream, func(state S, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
		p, meta, err := decide(state, r)
		if err != nil {
			return nil, err
		}
		return newEvent(id, p, meta), nil
	})
	op.Dedupe = id
	return op
}

// callerMetadata is the metadata of an event appended on c's behalf: who asked, and the correlation id
// that ties it to its payment (or request).
func callerMetadata(c Caller, correlation string) events.Metadata {
	return events.Metadata{SchemaVersion: events.SchemaVersion, CorrelationID: correlation, RequestID: c.RequestID,
		ClientID: c.ClientID, TraceParent: c.TraceParent}
}

// fingerprint is the hex SHA-256 of a validated command's canonical JSON (a struct, so its fields always
// marshal in the same order).
func fingerprint(cmd any) string {
	b, err := json.Marshal(cmd)
	if err != nil {
		panic(fmt.Sprintf("fingerprint of %T: %v", cmd, err)) // plain structs of strings and ints always marshal
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// original is the event that answers a client command: the one just appended, or, on a repeat, the stored
// one, provided the repeat asks for exactly what the first request asked.
func original(res eventstore.Result, id uuid.UUID, eventType, fp string) (eventstore.Event, error) {
	e := res.Find(id)
	if e == nil {
		return eventstore.Event{}, fmt.Errorf("command %s: the store returned no event with its id", id)
	}
	if !res.Replayed {
		return *e, nil
	}
	var meta events.Metadata
	if err := json.Unmarshal(e.Metadata, &meta); err != nil {
		return eventstore.Event{}, fmt.Errorf("metadata of event %s: %w", e.ID, err)
	}
	if e.Type != eventType || meta.Fingerprint != fp {
		return eventstore.Event{}, ErrIdempotencyKeyReused
	}
	return *e, nil
}

// NewStore is the event store the service decides on, on pool: one that keeps the streams' first events
// it reads (the openings of accounts and payments that commands read again and again) decoded.
func NewStore(pool *pgxpool.Pool) *eventstore.Store {
	return eventstore.New(pool).WithPayloads(eventstore.DecodeWith(events.Decode))
}

// decode is payload into the payload type the caller expects.
func decode[P events.Payload](e eventstore.Event) (P, error) {
	var zero P
	p, err := eventstore.PayloadOf(e, events.Decode)
	if err != nil {
		return zero, fmt.Errorf("event %s: %w", e.ID, err)
	}
	typed, ok := p.(P)
	if !ok {
		return zero, fmt.Errorf("event %s is a %s, not a %s", e.ID, e.Type, zero.EventType())
	}
	return typed, nil
}

// commandTimeout bounds one command's work in the database, so that a stuck database answers 503 instead
// of hanging the caller. It is generous because of the rare cold load: the first command on a long stream
// without a usable snapshot (a new snapshot schema) folds the whole stream once, about 2 to 8 seconds for
// 100k events here, and must be let finish or the snapshot is never written.
const commandTimeout = 30 * time.Second

// commandContext is the context a command runs in: the caller's values (request id) and commandTimeout,
// but not the caller's cancellation. A caller that gives up (the gateway's deadline, a client gone) does
// not abort a command midway: its transaction commits or rolls back on its own, and a retry finds the
// outcome through the command's deterministic id. The caller's context stays attached
// (eventstore.WithCaller): a client command whose caller gave up before its group began is dropped by
// the committer, so abandoned requests cost the database nothing.
func commandContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(eventstore.WithCaller(context.WithoutCancel(ctx), ctx), commandTimeout)
}
