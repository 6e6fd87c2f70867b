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
	return eventstore.Aggregate[domain.Collect]{Type: events.AggregateCollect, Evolve: evolvePayload(domain.Collect.Evolve)}
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
	note, err := s.seal(ctx, cmd.Note, payee, payer)
	if err != nil {
		return contract.Collect{}, false, err
	}
	op := clientOp(CollectAggregate(), id.String(), id, clientMetadata(c, id.String(), fp),
		func(col domain.Collect, r eventstore.Reads) (events.Payload, error) {
			payeeOpened, found, err := accountOpening(r, payee)
			if err != nil {
				return nil, err
			}
			if !found || payeeOpened.OwnerClientID != c.ClientID {
				return nil, fmt.Errorf("payee %s: %w", payee, domain.ErrAccountNotFound)
			}
			if _, found := r.Origin(payer); !found {
				return nil, fmt.Errorf("payer %s: %w", payer, ErrPayerNotFound)
			}
			return col.Request(domain.RequestCollect{ID: id.String(), Payee: cmd.Payee, Payer: cmd.Payer,
				PayeeType: payeeOpened.Kind(), Amount: cmd.Amount, Note: note, Client: c.ClientID,
				ExpiresAt: r.Now().Add(time.Duration(cmd.ExpiresIn) * time.Second)})
		})
	op.Origins = []string{payee, payer}
	out, err := commitClientCommand[events.CollectRequestedV1](ctx, s, op, fp, "request collect "+id.String())
	if err != nil {
		return contract.Collect{}, false, err
	}
	req := collectRequest{CollectRequestedV1: out.payload, at: out.event.CreatedAt}
	answer := req.answer(out.event)
	answer.Note = cmd.Note // the request's; the event's is sealed
	return answer, out.replayed, nil
}

// collectRequest is a collect request as its CollectRequested opened it.
type collectRequest struct {
	events.CollectRequestedV1
	at time.Time // when it was requested
}

// answer is the collect request as last changed by e.
func (req collectRequest) answer(e eventstore.Event) contract.Collect {
	out := contract.Collect{
		CollectID:   req.CollectID,
		PayeeVPA:    req.PayeeVPA,
		PayerVPA:    req.PayerVPA,
		AmountPaise: req.AmountPaise,
		Note:        req.Note,
		Status:      contract.CollectPending,
		ExpiresAt:   req.ExpiresAt,
		CreatedAt:   contract.Time(req.at),
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

// ended is the answer to a payer's decision (what) to end request id with the ending event type: the
// request as its close slot now stands, or the refusal of a request another ending closed first.
func (req collectRequest) ended(res eventstore.Result, id uuid.UUID, ending, what string) (contract.Collect, bool, error) {
	e := res.Find(collectClose(id))
	if e == nil {
		return contract.Collect{}, false, fmt.Errorf("%s: the store returned no event with its id", what)
	}
	if e.Type != ending {
		return contract.Collect{}, false, closedBy(e.Type)
	}
	return req.answer(*e), res.Replayed, nil
}

// collectOpening is the collect request as its CollectRequested opened it, read before its lock (an
// opening never changes): it names the payer whose owner may answer it.
func (s *Service) collectOpening(ctx context.Context, id uuid.UUID) (collectRequest, error) {
	cid := id.String()
	origins, err := s.store.Origins(ctx, cid)
	if err != nil {
		return collectRequest{}, fmt.Errorf("look up collect %s: %w", cid, err)
	}
	opening, found := origins[cid]
	if !found || opening.Type != events.CollectRequested {
		return collectRequest{}, fmt.Errorf("collect %s: %w", cid, domain.ErrCollectNotFound)
	}
	req, err := decode[events.CollectRequestedV1](opening)
	return collectRequest{CollectRequestedV1: req, at: opening.CreatedAt}, err
}

// payerDecision is an op on the collect request's stream deciding, on behalf of the payer's owner, the
// request's ending (its close slot). A request already closed by the same ending is replayed.
func payerDecision(c Caller, id uuid.UUID, payer string,
	decide func(col domain.Collect, now time.Time) (events.Payload, error)) *eventstore.Op {
	closing := collectClose(id)
	op := eventOp(CollectAggregate(), id.String(), closing,
		func(col domain.Collect, r eventstore.Reads) (events.Payload, events.Metadata, error) {
			owner, err := ownerOf(r, payer)
			if err != nil {
				return nil, events.Metadata{}, err
			}
			if owner != c.ClientID {
				return nil, events.Metadata{}, fmt.Errorf("collect %s: the caller does not own its payer: %w", id, domain.ErrCollectNotFound)
			}
			p, err := decide(col, r.Now())
			return p, callerMetadata(c, id.String()), err
		})
	// Not deduplicated: the caller's ownership of the payer is checked even on a closed request, and the
	// decision itself answers the ending already recorded.
	op.Dedupe = uuid.Nil
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
	req, err := s.collectOpening(ctx, id)
	if err != nil {
		return contract.Collect{}, false, err
	}
	closing, pid := collectClose(id), ids.CollectPayment(id)
	approve := payerDecision(c, id, req.PayerVPA, func(col domain.Collect, now time.Time) (events.Payload, error) {
		if col.Status == domain.CollectApproved {
			return events.CollectApprovedV1{CollectTerms: col.CollectTerms, PaymentID: col.PaymentID}, nil // replayed
		}
		return col.Approve(pid.String(), c.ClientID, now)
	})
	payMeta := callerMetadata(c, pid.String())
	payMeta.CausationID = closing.String()
	pay := eventOp(PaymentAggregate(), pid.String(), pid,
		func(p domain.Payment, r eventstore.Reads) (events.Payload, events.Metadata, error) {
			e, ok := r.Event(closing)
			if !ok || e.Type != events.CollectApproved {
				return nil, payMeta, fmt.Errorf("%w: collect %s is not approved", ErrStepPrecondition, id)
			}
			cmd, err := req.payment()
			if err != nil {
				return nil, payMeta, err
			}
			payeeType, err := payeeKind(r, req.PayeeVPA)
			if err != nil {
				return nil, payMeta, err
			}
			cmd.ID, cmd.Client, cmd.UPITxnID, cmd.PayeeType = pid.String(), c.ClientID, ids.UPITxnID(pid), payeeType
			payload, err := p.Initiate(cmd)
			return payload, payMeta, err
		})
	pay.Needs = []uuid.UUID{closing}
	pay.Origins = []string{req.PayerVPA, req.PayeeVPA}
	// The approval and its payment commit together or not at all: an approval is never left without its
	// payment.
	approve.With = []*eventstore.Op{pay}
	what := "approve collect " + id.String()
	out, err := s.store.ExecuteAll(ctx, []*eventstore.Op{approve})
	if err != nil {
		return contract.Collect{}, false, fmt.Errorf("%s: %w", what, err)
	}
	if out[0].Err != nil {
		return contract.Collect{}, false, fmt.Errorf("%s and start its payment: %w", what, out[0].Err)
	}
	return s.opened(ctx)(req.ended(out[0].Result, id, events.CollectApproved, what))
}

// payment is the payment an approval of the request starts, as far as the request's terms say.
func (req collectRequest) payment() (domain.InitiatePayment, error) {
	payer, err := vpa.Parse(req.PayerVPA)
	if err != nil {
		return domain.InitiatePayment{}, err
	}
	payee, err := vpa.Parse(req.PayeeVPA)
	if err != nil {
		return domain.InitiatePayment{}, err
	}
	amount, err := money.NewAmount(req.AmountPaise, money.Paise(req.AmountPaise))
	if err != nil {
		return domain.InitiatePayment{}, err
	}
	return domain.InitiatePayment{Payer: payer, Payee: payee, Amount: amount, Note: req.Note}, nil
}

// DeclineCollect declines a pending collect request (NPCI ZA). Declining a declined request answers it as
// it is.
func (s *Service) DeclineCollect(ctx context.Context, c Caller, id uuid.UUID) (contract.Collect, bool, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	req, err := s.collectOpening(ctx, id)
	if err != nil {
		return contract.Collect{}, false, err
	}
	op := payerDecision(c, id, req.PayerVPA, func(col domain.Collect, now time.Time) (events.Payload, error) {
		if col.Status == domain.CollectDeclined {
			return events.CollectDeclinedV1{CollectTerms: col.CollectTerms}, nil // replayed
		}
		return col.Decline(c.ClientID, now)
	})
	what := "decline collect " + id.String()
	res, err := s.commit.Execute(ctx, op)
	if err != nil {
		return contract.Collect{}, false, fmt.Errorf("%s: %w", what, err)
	}
	return s.opened(ctx)(req.ended(res, id, events.CollectDeclined, what))
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
		meta := callerMetadata(c, id.String())
		meta.CausationID = id.String()
		ops[i] = eventOp(CollectAggregate(), id.String(), collectClose(id),
			func(col domain.Collect, r eventstore.Reads) (events.Payload, events.Metadata, error) {
				expired, err := col.Expire(r.Now())
				return expired, meta, err
			})
	}
	results, err := s.store.ExecuteAll(ctx, ops)
	if err != nil {
		return nil, fmt.Errorf("expire collects: %w", err)
	}
	out := make([]ExpiryOutcome, len(collects))
	for i, r := range results {
		if r.Err != nil {
			out[i].Err = fmt.Errorf("expire collect %s: %w", collects[i], r.Err)
			continue
		}
		if e := r.Result.Last(); e != nil {
			out[i].EventType = e.Type
		}
	}
	return out, nil
}

// opened opens the sealed note of a collect request's answer (approve, decline): the request's note, or
// "[erased]" once one of its two people was erased.
func (s *Service) opened(ctx context.Context) func(contract.Collect, bool, error) (contract.Collect, bool, error) {
	return func(answer contract.Collect, replayed bool, err error) (contract.Collect, bool, error) {
		if err == nil {
			err = s.open(ctx, &answer.Note)
		}
		return answer, replayed, err
	}
}
