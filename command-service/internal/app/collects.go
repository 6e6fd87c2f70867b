package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"upi/command-service/internal/domain"
	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/ids"
	"upi/shared/contract/money"
	"upi/shared/contract/vpa"
	"upi/shared/platform/eventstore"
)

// PathCollects is the path of a collect request: with the client and the key, it scopes the collect id.
const PathCollects = "/v1/collect-requests"

// ErrPayerNotFound: a collect request names a payer that does not exist.
var ErrPayerNotFound = errors.New("payer not found")

// CollectAggregate is how the event store rebuilds a collect request; its stream is two events long.
func CollectAggregate() eventstore.Aggregate[domain.Collect] {
	return eventstore.Aggregate[domain.Collect]{
		Type: events.AggregateCollect,
		Evolve: func(c domain.Collect, e eventstore.Event) (domain.Collect, error) {
			p, err := payload(e)
			if err != nil {
				return c, err
			}
			return c.Evolve(p)
		},
	}
}

// collectClose is the event id every ending of a collect request takes (approved, declined, expired), so
// that only one of them can ever be recorded.
func collectClose(id uuid.UUID) uuid.UUID { return ids.StepEvent(id, ids.StepClose) }

// RequestCollect opens a collect request on its own stream. Its id is derived from the caller's
// idempotency key and is the CollectRequested's event id; the caller must own the payee, an ENTITY.
func (s *Service) RequestCollect(ctx context.Context, c Caller, cmd contract.RequestCollect) (contract.Collect, bool, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	id := effectID(c, PathCollects)
	fp := fingerprint(struct {
		Command          string `json:"command"`
		PayeeVPA         string `json:"payee_vpa"`
		PayerVPA         string `json:"payer_vpa"`
		AmountPaise      int64  `json:"amount_paise"`
		Note             string `json:"note"`
		ExpiresInSeconds int64  `json:"expires_in_seconds"`
	}{"request_collect", cmd.Payee.String(), cmd.Payer.String(), int64(cmd.Amount.Paise()), cmd.Note, cmd.ExpiresIn})
	payee, payer := cmd.Payee.String(), cmd.Payer.String()
	meta := clientMetadata(c, id.String(), fp)
	op := eventstore.NewOp(CollectAggregate(), id.String(),
		func(col domain.Collect, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
			opening, found := r.Origin(payee)
			if !found {
				return nil, fmt.Errorf("payee %s: %w", payee, domain.ErrAccountNotFound)
			}
			payeeOpened, err := decode[events.AccountOpenedV1](opening)
			if err != nil {
				return nil, err
			}
			if payeeOpened.OwnerClientID != c.ClientID {
				return nil, fmt.Errorf("payee %s: %w", payee, domain.ErrAccountNotFound)
			}
			if _, found := r.Origin(payer); !found {
				return nil, fmt.Errorf("payer %s: %w", payer, ErrPayerNotFound)
			}
			requested, err := col.Request(domain.RequestCollect{ID: id.String(), Payee: cmd.Payee, Payer: cmd.Payer,
				PayeeType: payeeOpened.Kind(), Amount: cmd.Amount, Note: cmd.Note, Client: c.ClientID,
				ExpiresAt: r.Now().Add(time.Duration(cmd.ExpiresIn) * time.Second)})
			if err != nil {
				return nil, err
			}
			return newEvent(id, requested, meta), nil
		})
	op.Dedupe = id
	op.Origins = []string{payee, payer}
	res, err := s.commit.Execute(ctx, op)
	if err != nil {
		return contract.Collect{}, false, failure("request collect "+id.String(), err)
	}
	e, err := original(res, id, events.CollectRequested, fp)
	if err != nil {
		return contract.Collect{}, false, err
	}
	requested, err := decode[events.CollectRequestedV1](e)
	if err != nil {
		return contract.Collect{}, false, err
	}
	return collectAnswer(requested, e.CreatedAt, e), res.Replayed, nil
}

// collectAnswer is the collect request as requested, and as last changed by e.
func collectAnswer(req events.CollectRequestedV1, createdAt time.Time, e eventstore.Event) contract.Collect {
	out := contract.Collect{
		CollectID:   req.CollectID,
		PayeeVPA:    req.PayeeVPA,
		PayerVPA:    req.PayerVPA,
		AmountPaise: req.AmountPaise,
		Note:        req.Note,
		Status:      contract.CollectPending,
		ExpiresAt:   req.ExpiresAt,
		CreatedAt:   contract.Time(createdAt),
		UpdatedAt:   contract.Time(e.CreatedAt),
		Position:    e.Position.Token(),
	}
	switch e.Type {
	case events.CollectApproved:
		out.Status = contract.CollectApproved
		if a, err := decode[events.CollectApprovedV1](e); err == nil {
			out.PaymentID = &a.PaymentID
		}
	case events.CollectDeclined:
		out.Status = contract.CollectDeclined
		code := events.NPCICollectDeclined
		out.NPCICode = &code
	case events.CollectExpired:
		out.Status = contract.CollectExpired
		code := events.NPCICollectExpired
		out.NPCICode = &code
	}
	return out
}

// collectOpening is the collect request's CollectRequested, read before its lock (an opening never
// changes): it names the payer whose owner may answer it.
func (s *Service) collectOpening(ctx context.Context, id uuid.UUID) (events.CollectRequestedV1, eventstore.Event, error) {
	cid := id.String()
	origins, err := s.store.Origins(ctx, cid)
	if err != nil {
		return events.CollectRequestedV1{}, eventstore.Event{}, failure("look up collect "+cid, err)
	}
	opening, found := origins[cid]
	if !found || opening.Type != events.CollectRequested {
		return events.CollectRequestedV1{}, eventstore.Event{}, fmt.Errorf("collect %s: %w", cid, domain.ErrCollectNotFound)
	}
	req, err := decode[events.CollectRequestedV1](opening)
	return req, opening, err
}

// payerDecision is an op on the collect request's stream deciding, on behalf of the payer's owner, the
// request's ending (its close slot). A request already closed by the same ending is replayed.
func payerDecision(c Caller, id uuid.UUID, payer string, meta events.Metadata,
	decide func(col domain.Collect, now time.Time) (events.Payload, error)) *eventstore.Op {
	closing := collectClose(id)
	op := eventstore.NewOp(CollectAggregate(), id.String(),
		func(col domain.Collect, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
			owner, err := ownerOf(r, payer)
			if err != nil {
				return nil, err
			}
			if owner != c.ClientID {
				return nil, fmt.Errorf("collect %s: the caller does not own its payer: %w", id, domain.ErrCollectNotFound)
			}
			p, err := decide(col, r.Now())
			if err != nil {
				return nil, err
			}
			return newEvent(closing, p, meta), nil
		})
	op.Needs = []uuid.UUID{closing}
	op.Origins = []string{payer}
	return op
}

// ApproveCollect approves a pending collect request and starts its payment, a normal one (the workflow
// moves the money under the payer's limits), in the same transaction: the approval and the payment's
// initiation take ids derived from the collect id, so approving again (even concurrently) meets them and
// starts nothing more. Approving an approved request answers it as it is.
func (s *Service) ApproveCollect(ctx context.Context, c Caller, id uuid.UUID) (contract.Collect, bool, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	req, opening, err := s.collectOpening(ctx, id)
	if err != nil {
		return contract.Collect{}, false, err
	}
	closing, pid := collectClose(id), ids.CollectPayment(id)
	meta := events.Metadata{SchemaVersion: events.SchemaVersion, CorrelationID: id.String(), RequestID: c.RequestID,
		ClientID: c.ClientID, TraceParent: c.TraceParent}
	approve := payerDecision(c, id, req.PayerVPA, meta, func(col domain.Collect, now time.Time) (events.Payload, error) {
		if col.Status == domain.CollectApproved {
			return events.CollectApprovedV1{CollectTerms: col.CollectTerms, PaymentID: col.PaymentID}, nil // replayed
		}
		return col.Approve(pid.String(), c.ClientID, now)
	})
	payMeta := events.Metadata{SchemaVersion: events.SchemaVersion, CorrelationID: pid.String(),
		CausationID: closing.String(), RequestID: c.RequestID, ClientID: c.ClientID, TraceParent: c.TraceParent}
	pay := eventstore.NewOp(PaymentAggregate(), pid.String(),
		func(p domain.Payment, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
			e, ok := r.Event(closing)
			if !ok || e.Type != events.CollectApproved {
				return nil, fmt.Errorf("%w: collect %s is not approved", ErrStepPrecondition, id)
			}
			payer, err := vpa.Parse(req.PayerVPA)
			if err != nil {
				return nil, err
			}
			payee, err := vpa.Parse(req.PayeeVPA)
			if err != nil {
				return nil, err
			}
			amount, err := money.NewAmount(req.AmountPaise, money.Paise(req.AmountPaise))
			if err != nil {
				return nil, err
			}
			payeeOpening, found := r.Origin(req.PayeeVPA)
			if !found {
				return nil, fmt.Errorf("payee %s: %w", req.PayeeVPA, ErrPayeeNotFound)
			}
			payeeOpened, err := decode[events.AccountOpenedV1](payeeOpening)
			if err != nil {
				return nil, err
			}
			initiated, err := p.Initiate(domain.InitiatePayment{ID: pid.String(), Payer: payer,
				Payee: payee, Amount: amount, Note: req.Note, Client: c.ClientID,
				UPITxnID: ids.UPITxnID(pid), PayeeType: payeeOpened.Kind()})
			if err != nil {
				return nil, err
			}
			return newEvent(pid, initiated, payMeta), nil
		})
	pay.Dedupe = pid
	pay.Needs = []uuid.UUID{closing}
	pay.Origins = []string{req.PayerVPA, req.PayeeVPA}
	out, err := s.store.ExecuteAll(ctx, []*eventstore.Op{approve, pay})
	if err != nil {
		return contract.Collect{}, false, failure("approve collect "+id.String(), err)
	}
	if out[0].Err != nil {
		return contract.Collect{}, false, failure("approve collect "+id.String(), out[0].Err)
	}
	if out[1].Err != nil {
		return contract.Collect{}, false, failure("start the payment of collect "+id.String(), out[1].Err)
	}
	e := out[0].Result.Last()
	if e == nil || e.ID != closing {
		return contract.Collect{}, false, fmt.Errorf("approve collect %s: the store returned no event with its id", id)
	}
	if e.Type != events.CollectApproved {
		return contract.Collect{}, false, closedBy(e.Type)
	}
	return collectAnswer(req, opening.CreatedAt, *e), out[0].Result.Replayed, nil
}

// DeclineCollect declines a pending collect request (NPCI ZA). Declining a declined request answers it as
// it is.
func (s *Service) DeclineCollect(ctx context.Context, c Caller, id uuid.UUID) (contract.Collect, bool, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	req, opening, err := s.collectOpening(ctx, id)
	if err != nil {
		return contract.Collect{}, false, err
	}
	meta := events.Metadata{SchemaVersion: events.SchemaVersion, CorrelationID: id.String(), RequestID: c.RequestID,
		ClientID: c.ClientID, TraceParent: c.TraceParent}
	op := payerDecision(c, id, req.PayerVPA, meta, func(col domain.Collect, now time.Time) (events.Payload, error) {
		if col.Status == domain.CollectDeclined {
			return events.CollectDeclinedV1{CollectTerms: col.CollectTerms}, nil // replayed
		}
		return col.Decline(c.ClientID, now)
	})
	res, err := s.commit.Execute(ctx, op)
	if err != nil {
		return contract.Collect{}, false, failure("decline collect "+id.String(), err)
	}
	e := res.Last()
	if e == nil || e.ID != collectClose(id) {
		return contract.Collect{}, false, fmt.Errorf("decline collect %s: the store returned no event with its id", id)
	}
	if e.Type != events.CollectDeclined {
		return contract.Collect{}, false, closedBy(e.Type)
	}
	return collectAnswer(req, opening.CreatedAt, *e), res.Replayed, nil
}

// closedBy is the refusal of a decision on a request another ending closed.
func closedBy(eventType string) error {
	switch eventType {
	case events.CollectApproved:
		return domain.ErrCollectApproved
	case events.CollectDeclined:
		return domain.ErrCollectDeclined
	case events.CollectExpired:
		return domain.ErrCollectExpired
	}
	return fmt.Errorf("%w: collect closed by a %s", domain.ErrCorruptStream, eventType)
}

// ExpiryOutcome is what happened to one collect request asked to expire: the event that closes it (its
// CollectExpired, or the ending that came first), or the error that failed it alone.
type ExpiryOutcome struct {
	EventType string
	Err       error
}

// ExpireCollects appends CollectExpired to each request that is pending past its expiry, in one group. A
// request already closed answers the event that closed it; one not due yet fails with
// domain.ErrCollectNotDue.
func (s *Service) ExpireCollects(ctx context.Context, c Caller, collects []uuid.UUID) ([]ExpiryOutcome, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	ops := make([]*eventstore.Op, len(collects))
	for i, id := range collects {
		closing := collectClose(id)
		meta := events.Metadata{SchemaVersion: events.SchemaVersion, CorrelationID: id.String(),
			CausationID: id.String(), RequestID: c.RequestID, ClientID: c.ClientID, TraceParent: c.TraceParent}
		op := eventstore.NewOp(CollectAggregate(), id.String(),
			func(col domain.Collect, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
				expired, err := col.Expire(r.Now())
				if err != nil {
					return nil, err
				}
				return newEvent(closing, expired, meta), nil
			})
		op.Dedupe = closing
		ops[i] = op
	}
	results, err := s.store.ExecuteAll(ctx, ops)
	if err != nil {
		return nil, failure("expire collects", err)
	}
	out := make([]ExpiryOutcome, len(collects))
	for i, r := range results {
		if r.Err != nil {
			out[i].Err = failure("expire collect "+collects[i].String(), r.Err)
			continue
		}
		if e := r.Result.Last(); e != nil {
			out[i].EventType = e.Type
		}
	}
	return out, nil
}
