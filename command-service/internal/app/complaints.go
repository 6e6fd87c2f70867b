package app

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"upi/command-service/internal/domain"
	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/ids"
	"upi/shared/platform/eventstore"
)

// ComplaintTerms are the complaint rules: how long after a payment a complaint may be raised
// (COMPLAINT_WINDOW, NPCI's 45 days) and how long a merchant has to answer a dispute (COMPLAINT_TAT, T+1).
type ComplaintTerms struct {
	Window, TAT time.Duration
}

// DefaultComplaintTerms are NPCI's: 45 days to complain, one day for the merchant.
var DefaultComplaintTerms = ComplaintTerms{Window: 45 * 24 * time.Hour, TAT: 24 * time.Hour}

// WithComplaintTerms sets the complaint rules (COMPLAINT_WINDOW, COMPLAINT_TAT).
func (s *Service) WithComplaintTerms(t ComplaintTerms) *Service {
	s.complaints = t
	return s
}

// ComplaintsPath is the path of a complaint about a payment: with the client and the key, it scopes the
// complaint id.
func ComplaintsPath(paymentID uuid.UUID) string {
	return PathPayments + "/" + paymentID.String() + "/complaints"
}

// ComplaintAggregate is how the event store rebuilds a payment's complaint stream.
func ComplaintAggregate() eventstore.Aggregate[domain.Complaints] {
	return eventstore.Aggregate[domain.Complaints]{Type: events.AggregateComplaint, Evolve: evolvePayload(domain.Complaints.Evolve)}
}

// complaintClose is the event id of a complaint's resolution: one per complaint, whoever resolves it.
func complaintClose(id uuid.UUID) uuid.UUID { return ids.StepEvent(id, ids.StepClose) }

// paymentSlots are the event ids of a payment's three workflow slots, which a complaint's answer reads.
func paymentSlots(pid uuid.UUID) []uuid.UUID {
	return []uuid.UUID{ids.StepEvent(pid, ids.StepDebit), ids.StepEvent(pid, ids.StepSettle), ids.StepEvent(pid, ids.StepClose)}
}

// history is what the log says of payment pid, from its opening and the slots an op read.
func history(r eventstore.Reads, pid uuid.UUID) (domain.PaymentHistory, error) {
	opening, found := r.Origin(pid.String())
	if !found || opening.Type != events.PaymentInitiated {
		return domain.PaymentHistory{}, fmt.Errorf("payment %s: %w", pid, domain.ErrPaymentNotFound)
	}
	initiated, err := decode[events.PaymentInitiatedV1](opening)
	if err != nil {
		return domain.PaymentHistory{}, err
	}
	if initiated.UPITxnID == "" {
		initiated.UPITxnID = ids.UPITxnID(pid)
	}
	h := domain.PaymentHistory{Initiated: initiated, InitiatedAt: opening.CreatedAt}
	slots := paymentSlots(pid)
	for i, into := range []*string{&h.Debit, &h.Settle, &h.Done} {
		if e, ok := r.Event(slots[i]); ok {
			*into = e.Type
		}
	}
	return h, nil
}

// RaiseComplaint opens a complaint about a payment, by the owner of its payer, on the payment's complaint
// stream, whose lock keeps one complaint open per payment however many are raised at once. When the
// payment's history answers it (reversed, never debited, credited), it is resolved in the same commit.
func (s *Service) RaiseComplaint(ctx context.Context, c Caller, cmd contract.RaiseComplaint) (contract.Complaint, bool, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	pid := cmd.PaymentID
	id := effectID(c, ComplaintsPath(pid))
	fp := fingerprint(struct {
		Command     string `json:"command"`
		PaymentID   string `json:"payment_id"`
		Reason      string `json:"reason_code"`
		Description string `json:"description"`
	}{"raise_complaint", pid.String(), cmd.Reason, cmd.Description})
	origins, err := s.store.Origins(ctx, pid.String())
	if err != nil {
		return contract.Complaint{}, false, fmt.Errorf("look up payment %s: %w", pid, err)
	}
	opening, found := origins[pid.String()]
	if !found || opening.Type != events.PaymentInitiated {
		return contract.Complaint{}, false, fmt.Errorf("payment %s: %w", pid, domain.ErrPaymentNotFound)
	}
	initiated, err := decode[events.PaymentInitiatedV1](opening)
	if err != nil {
		return contract.Complaint{}, false, err
	}
	meta := clientMetadata(c, pid.String(), fp)
	closing := complaintClose(id)
	op := eventstore.NewOp(ComplaintAggregate(), events.ComplaintStream(pid.String()),
		func(state domain.Complaints, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
			owner, err := ownerOf(r, initiated.PayerVPA)
			if err != nil {
				return nil, err
			}
			if owner != c.ClientID {
				return nil, fmt.Errorf("payment %s: the caller does not own its payer: %w", pid, domain.ErrPaymentNotFound)
			}
			h, err := history(r, pid)
			if err != nil {
				return nil, err
			}
			out, err := state.Raise(domain.RaiseComplaint{ID: id.String(), Reason: cmd.Reason, Description: cmd.Description,
				Client: c.ClientID, At: r.Now(), Window: s.complaints.Window, TAT: s.complaints.TAT}, h)
			if err != nil {
				return nil, err
			}
			evs := newEvent(id, out[0], meta)
			if len(out) > 1 {
				evs = append(evs, newEvent(closing, out[1], meta)...)
			}
			return evs, nil
		})
	op.Dedupe = id
	op.Needs = paymentSlots(pid)
	op.Origins = []string{pid.String(), initiated.PayerVPA}
	res, err := s.commit.Execute(ctx, op)
	if err != nil {
		return contract.Complaint{}, false, fmt.Errorf("raise complaint on payment %s: %w", pid, err)
	}
	e, err := original(res, id, events.ComplaintRaised, fp)
	if err != nil {
		return contract.Complaint{}, false, err
	}
	raised, err := decode[events.ComplaintRaisedV1](e)
	if err != nil {
		return contract.Complaint{}, false, err
	}
	out := complaintAnswer(raised, e)
	if end := res.Find(closing); end != nil {
		if resolved, err := decode[events.ComplaintResolvedV1](*end); err == nil {
			resolvedAnswer(&out, resolved, *end)
		}
	}
	return out, res.Replayed, nil
}

// complaintAnswer is a complaint as raised.
func complaintAnswer(p events.ComplaintRaisedV1, e eventstore.Event) contract.Complaint {
	out := contract.Complaint{ComplaintID: p.ComplaintID, PaymentID: p.PaymentID, UPITxnID: p.UPITxnID,
		PayerVPA: p.PayerVPA, PayeeVPA: p.PayeeVPA, AmountPaise: p.AmountPaise, ReasonCode: p.Reason,
		Description: p.Description, Status: events.ComplaintStatusRaised, CreatedAt: contract.Time(e.CreatedAt),
		UpdatedAt: contract.Time(e.CreatedAt), Position: e.Position.Token()}
	if p.DueAt != "" {
		due := p.DueAt
		out.DueAt = &due
	}
	return out
}

// resolvedAnswer gives a complaint its resolution.
func resolvedAnswer(out *contract.Complaint, p events.ComplaintResolvedV1, e eventstore.Event) {
	code, by := p.Resolution, p.By
	out.Status, out.ResolutionCode, out.ResolvedBy = p.Status, &code, &by
	out.UpdatedAt, out.Position = contract.Time(e.CreatedAt), e.Position.Token()
}

// ResolutionOutcome is what happened to one complaint asked to be resolved from the log: the event that
// closed it, or the error that failed it alone.
type ResolutionOutcome struct {
	EventType string
	Err       error
}

// ResolveComplaints resolves from the log each complaint whose payment has ended (event-consumers'
// complaints process asks, at least once): the resolution's event id is the complaint's close slot, so a
// repeat answers the resolution already recorded. A complaint whose payment is in flight fails with
// ErrStepPrecondition.
func (s *Service) ResolveComplaints(ctx context.Context, c Caller, refs []contract.ComplaintRef) ([]ResolutionOutcome, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	ops := make([]*eventstore.Op, len(refs))
	for i, ref := range refs {
		meta := callerMetadata(c, ref.PaymentID.String())
		meta.CausationID = ref.ComplaintID.String()
		ref := ref
		op := eventOp(ComplaintAggregate(), events.ComplaintStream(ref.PaymentID.String()), complaintClose(ref.ComplaintID),
			func(state domain.Complaints, r eventstore.Reads) (events.Payload, events.Metadata, error) {
				if state.Open == nil || state.Open.ComplaintID != ref.ComplaintID.String() {
					return nil, meta, fmt.Errorf("complaint %s: %w", ref.ComplaintID, domain.ErrComplaintNotFound)
				}
				h, err := history(r, ref.PaymentID)
				if err != nil {
					return nil, meta, err
				}
				if !events.ReasonFromLog(state.Open.Reason) && h.Done != events.PaymentFailed {
					return nil, meta, fmt.Errorf("%w: complaint %s is the merchant's to answer", ErrStepPrecondition, ref.ComplaintID)
				}
				p, err := domain.Resolution(*state.Open, h)
				if err != nil {
					return nil, meta, fmt.Errorf("%w: complaint %s: %w", ErrStepPrecondition, ref.ComplaintID, err)
				}
				return p, meta, nil
			})
		op.Needs = paymentSlots(ref.PaymentID)
		op.Origins = []string{ref.PaymentID.String()}
		ops[i] = op
	}
	results, err := s.store.ExecuteAll(ctx, ops)
	if err != nil {
		return nil, fmt.Errorf("resolve complaints: %w", err)
	}
	out := make([]ResolutionOutcome, len(refs))
	for i, r := range results {
		if r.Err != nil {
			out[i].Err = fmt.Errorf("resolve complaint %s: %w", refs[i].ComplaintID, r.Err)
			continue
		}
		if e := r.Result.Last(); e != nil {
			out[i].EventType = e.Type
		}
	}
	return out, nil
}
