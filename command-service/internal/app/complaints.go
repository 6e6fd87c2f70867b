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
	"upi/shared/contract/money"
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

// PathComplaints is the path of the complaints, whose merchants answer them under it.
const PathComplaints = "/v1/complaints"

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

// complaintSettle is the event id of a dispute's settlement: the merchant's accept or the chargeback,
// whichever comes first.
func complaintSettle(id uuid.UUID) uuid.UUID { return ids.StepEvent(id, ids.StepSettle) }

// raisedComplaint is the ComplaintRaised of complaint id (ErrComplaintNotFound if there is none).
func (s *Service) raisedComplaint(ctx context.Context, id uuid.UUID) (events.ComplaintRaisedV1, eventstore.Event, error) {
	found, err := s.store.EventsByID(ctx, id)
	if err != nil {
		return events.ComplaintRaisedV1{}, eventstore.Event{}, fmt.Errorf("look up complaint %s: %w", id, err)
	}
	if len(found) == 0 || found[0].Type != events.ComplaintRaised {
		return events.ComplaintRaisedV1{}, eventstore.Event{}, fmt.Errorf("complaint %s: %w", id, domain.ErrComplaintNotFound)
	}
	raised, err := decode[events.ComplaintRaisedV1](found[0])
	return raised, found[0], err
}

// disputeRefund is the op that reserves, on the payment's stream, the refund (id rid) of a dispute's
// settlement: the payment's amount less what was refunded or is being refunded, nothing if that is zero.
// It is deduplicated on the refund id, so a second settlement (an accept racing a chargeback, or a
// repeat) replays the first instead of refunding again. The refund's client is the merchant (the payee's
// owner); check refuses the refund, or says whether it is a chargeback's.
func disputeRefund(pid, rid uuid.UUID, complaint string, meta events.Metadata,
	check func(p domain.Payment, r eventstore.Reads) (chargeback bool, err error)) *eventstore.Op {
	op := eventstore.NewOp(PaymentAggregate(), pid.String(), func(p domain.Payment, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
		chargeback, err := check(p, r)
		if err != nil {
			return nil, err
		}
		amount := p.DisputedAmount()
		if amount <= 0 {
			return nil, nil // refunded in full already: nothing to return
		}
		owner, err := ownerOf(r, p.Payee)
		if err != nil {
			return nil, err
		}
		due, err := money.NewAmount(amount, money.Paise(amount))
		if err != nil {
			return nil, err
		}
		reserved, err := p.ReserveRefund(domain.RequestRefund{ID: rid.String(), Amount: due, Client: owner, UPITxnID: ids.UPITxnID(rid), At: r.Now(), ComplaintID: complaint, Chargeback: chargeback})
		if err != nil {
			return nil, err
		}
		return newEvent(rid, reserved, meta), nil
	})
	op.Dedupe = rid
	return op
}

// refunding is the refund that op's group reserved with id rid, if it did.
func refunding(r eventstore.Reads, rid uuid.UUID) (domain.Refunding, error) {
	e, ok := r.Event(rid)
	if !ok {
		return domain.Refunding{}, nil
	}
	reserved, err := decode[events.RefundReservedV1](e)
	if err != nil {
		return domain.Refunding{}, err
	}
	return domain.Refunding{ID: reserved.RefundID, Amount: reserved.AmountPaise}, nil
}

// complaintEvents turns a complaint decision into its events: a settlement at the settle slot, a
// resolution at the close slot, a retry at its own id.
func complaintEvents(cid uuid.UUID, out []events.Payload, meta events.Metadata) []eventstore.NewEvent {
	var evs []eventstore.NewEvent
	for _, p := range out {
		id := complaintClose(cid)
		switch p := p.(type) {
		case events.ComplaintAcceptedV1, events.ChargebackRaisedV1:
			id = complaintSettle(cid)
		case events.ComplaintRefundRetriedV1:
			id = ids.ComplaintRetry(cid, p.Attempt)
		}
		evs = append(evs, newEvent(id, p, meta)...)
	}
	return evs
}

// AnswerComplaint records the merchant's answer to a dispute, by the owner of the payment's payee,
// before its due_at. An accept reserves the refund of the disputed amount on the payment's stream (the
// refund process then moves the money) and records ComplaintAccepted and the resolution RET, all in one
// commit; the refund's id is the one a chargeback would take, so an accept racing the chargeback refunds
// the payer once. A rejection records the resolution MERCHANT_REJECTED with the reason. Answering again
// as before answers the complaint as it is.
func (s *Service) AnswerComplaint(ctx context.Context, c Caller, cmd contract.AnswerComplaint) (contract.Complaint, bool, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	cid := cmd.ComplaintID
	raised, opening, err := s.raisedComplaint(ctx, cid)
	if err != nil {
		return contract.Complaint{}, false, err
	}
	pid, err := uuid.Parse(raised.PaymentID)
	if err != nil {
		return contract.Complaint{}, false, fmt.Errorf("complaint %s: payment id %q: %w", cid, raised.PaymentID, err)
	}
	meta := callerMetadata(c, pid.String())
	meta.CausationID = cid.String()
	rid := ids.ComplaintRefund(cid, 1)
	answer := eventstore.NewOp(ComplaintAggregate(), events.ComplaintStream(pid.String()),
		func(state domain.Complaints, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
			owner, err := ownerOf(r, raised.PayeeVPA)
			if err != nil {
				return nil, err
			}
			if owner != c.ClientID {
				return nil, fmt.Errorf("complaint %s: the caller does not own its payee: %w", cid, domain.ErrComplaintNotFound)
			}
			refund, err := refunding(r, rid)
			if err != nil {
				return nil, err
			}
			out, err := state.Answer(domain.MerchantAnswer{ID: cid.String(), Client: c.ClientID, Note: cmd.Note,
				Reject: cmd.Reject, At: r.Now()}, refund)
			if err != nil {
				return nil, err
			}
			return complaintEvents(cid, out, meta), nil
		})
	answer.Origins = []string{raised.PayeeVPA}
	op := answer
	if !cmd.Reject {
		// The refund is decided first, under the payment's lock (its amount is the payment's to say); the
		// answer joins it and reads it.
		op = disputeRefund(pid, rid, cid.String(), meta, func(domain.Payment, eventstore.Reads) (bool, error) { return false, nil })
		op.Origins = []string{raised.PayeeVPA}
		op.With = []*eventstore.Op{answer}
	}
	what := "answer complaint " + cid.String()
	out, err := s.store.ExecuteAll(ctx, []*eventstore.Op{op})
	if err != nil {
		return contract.Complaint{}, false, fmt.Errorf("%s: %w", what, err)
	}
	if out[0].Err != nil {
		return contract.Complaint{}, false, fmt.Errorf("%s: %w", what, out[0].Err)
	}
	res := out[0].Result
	replayed := res.Replayed || len(res.Events) == 0
	view, settledBy, err := s.complaintView(ctx, raised, opening)
	if err != nil {
		return contract.Complaint{}, false, fmt.Errorf("%s: %w", what, err)
	}
	if res.Replayed && settledBy == events.ChargebackRaised {
		// The refund's reservation was the chargeback's: the merchant's time had passed.
		return contract.Complaint{}, false, fmt.Errorf("%s: %w", what, domain.ErrComplaintTATPassed)
	}
	if res.Replayed && !cmd.Reject {
		// Replayed on the refund's id: the answer joined to it was not decided, so check it here.
		if view.ResolvedBy == nil || *view.ResolvedBy != events.ResolutionByMerchant || view.Status != events.ComplaintStatusResolved {
			return contract.Complaint{}, false, fmt.Errorf("%s: %w", what, domain.ErrComplaintClosed)
		}
	}
	return view, replayed, nil
}

// complaintView is a complaint as the log says it is now: raised, settled, resolved; and the type of its
// settlement's event ("" if none).
func (s *Service) complaintView(ctx context.Context, raised events.ComplaintRaisedV1, opening eventstore.Event) (contract.Complaint, string, error) {
	cid, err := uuid.Parse(raised.ComplaintID)
	if err != nil {
		return contract.Complaint{}, "", fmt.Errorf("complaint id %q: %w", raised.ComplaintID, err)
	}
	found, err := s.store.EventsByID(ctx, complaintSettle(cid), complaintClose(cid))
	if err != nil {
		return contract.Complaint{}, "", fmt.Errorf("read complaint %s: %w", cid, err)
	}
	out := complaintAnswer(raised, opening)
	var settledBy string
	for _, e := range found {
		p, err := eventstore.PayloadOf(e, events.Decode)
		if err != nil {
			return contract.Complaint{}, "", fmt.Errorf("event %s: %w", e.ID, err)
		}
		switch p := p.(type) {
		case events.ComplaintAcceptedV1:
			settledBy = e.Type
			settledAnswer(&out, p.ComplaintSettlementV1, false)
		case events.ChargebackRaisedV1:
			settledBy = e.Type
			settledAnswer(&out, p.ComplaintSettlementV1, true)
		case events.ComplaintResolvedV1:
			resolvedAnswer(&out, p, e)
			out.Note = p.Note
		}
	}
	return out, settledBy, nil
}

// settledAnswer gives a complaint its settlement's refund, pending as far as the command knows.
func settledAnswer(out *contract.Complaint, p events.ComplaintSettlementV1, chargeback bool) {
	out.Chargeback = chargeback
	if p.RefundID != "" {
		rid, status := p.RefundID, contract.ComplaintRefundPending
		out.RefundID, out.RefundStatus = &rid, &status
	}
}

// ChargebackComplaints charges back each dispute unanswered past its due_at (event-consumers' complaints
// process asks, at least once): the refund of the disputed amount is reserved on the payment's stream
// with the id an accept would take, and ChargebackRaised and the resolution CHARGEBACK are recorded, in
// one commit. A dispute the merchant answered first answers its settlement's event, or fails with
// ErrComplaintClosed; one not yet due fails with ErrComplaintNotDue.
func (s *Service) ChargebackComplaints(ctx context.Context, c Caller, refs []contract.ComplaintRef) ([]ResolutionOutcome, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	pids := make([]uuid.UUID, len(refs))
	for i, ref := range refs {
		pids[i] = ref.PaymentID
	}
	payees, err := s.payees(ctx, pids)
	if err != nil {
		return nil, fmt.Errorf("charge back complaints: %w", err)
	}
	ops := make([]*eventstore.Op, len(refs))
	for i, ref := range refs {
		cid, pid := ref.ComplaintID, ref.PaymentID
		payee, found := payees[pid]
		if !found {
			continue // fails alone (a nil op)
		}
		meta := callerMetadata(c, pid.String())
		meta.CausationID = cid.String()
		rid := ids.ComplaintRefund(cid, 1)
		charge := eventstore.NewOp(ComplaintAggregate(), events.ComplaintStream(pid.String()),
			func(state domain.Complaints, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
				refund, err := refunding(r, rid)
				if err != nil {
					return nil, err
				}
				out, err := state.Chargeback(cid.String(), r.Now(), refund)
				if err != nil {
					return nil, fmt.Errorf("complaint %s: %w", cid, err)
				}
				return complaintEvents(cid, out, meta), nil
			})
		op := disputeRefund(pid, rid, cid.String(), meta, func(domain.Payment, eventstore.Reads) (bool, error) { return true, nil })
		op.Origins = []string{payee} // the merchant's owner is the refund's client
		op.With = []*eventstore.Op{charge}
		ops[i] = op
	}
	return s.complaintOutcomes(ctx, "charge back complaints", refs, ops)
}

// complaintOutcomes runs one op per complaint in one group and says what each did: the settlement's
// event type (the one recorded before, for a replay), or its error (a nil op: its payment was not found).
func (s *Service) complaintOutcomes(ctx context.Context, what string, refs []contract.ComplaintRef, ops []*eventstore.Op) ([]ResolutionOutcome, error) {
	var run []*eventstore.Op
	for _, op := range ops {
		if op != nil {
			run = append(run, op)
		}
	}
	ran, err := s.store.ExecuteAll(ctx, run)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out := make([]ResolutionOutcome, len(refs))
	for i := range refs {
		if ops[i] == nil {
			out[i].Err = fmt.Errorf("complaint %s: payment %s: %w", refs[i].ComplaintID, refs[i].PaymentID, domain.ErrPaymentNotFound)
			continue
		}
		r := ran[0]
		ran = ran[1:]
		switch {
		case r.Err != nil:
			out[i].Err = fmt.Errorf("complaint %s: %w", refs[i].ComplaintID, r.Err)
		case len(r.Result.Events) > 0 && !r.Result.Replayed:
			out[i].EventType = r.Result.Events[len(r.Result.Events)-1].Type
		default:
			found, err := s.store.EventsByID(ctx, complaintSettle(refs[i].ComplaintID))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			if len(found) == 1 {
				out[i].EventType = found[0].Type
			}
		}
	}
	return out, nil
}

// payees are the payees (the merchants) of the payments, from their openings, which never change; a
// payment without one is missing from the map.
func (s *Service) payees(ctx context.Context, pids []uuid.UUID) (map[uuid.UUID]string, error) {
	streams := make([]string, len(pids))
	for i, pid := range pids {
		streams[i] = pid.String()
	}
	origins, err := s.store.Origins(ctx, streams...)
	if err != nil {
		return nil, fmt.Errorf("look up payments: %w", err)
	}
	out := make(map[uuid.UUID]string, len(pids))
	for _, pid := range pids {
		opening, found := origins[pid.String()]
		if !found || opening.Type != events.PaymentInitiated {
			continue
		}
		initiated, err := decode[events.PaymentInitiatedV1](opening)
		if err != nil {
			return nil, err
		}
		out[pid] = initiated.PayeeVPA
	}
	return out, nil
}

// RetryComplaintRefunds tries again the refund of each settled dispute whose latest attempt failed
// (event-consumers' complaints process asks when the merchant's balance seems to cover it): a new refund,
// with the next attempt's id, is reserved on the payment's stream, with ComplaintRefundRetried on the
// complaint's, in one commit, provided the failed attempt is released on the payment and the merchant's
// account, read under its lock, is open and covers the amount (else ErrStepPrecondition: asked again
// later). A retry asked twice replays on the new attempt's id.
func (s *Service) RetryComplaintRefunds(ctx context.Context, c Caller, retries []contract.ComplaintRetry) ([]ResolutionOutcome, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	pids := make([]uuid.UUID, len(retries))
	for i, x := range retries {
		pids[i] = x.PaymentID
	}
	payees, err := s.payees(ctx, pids)
	if err != nil {
		return nil, fmt.Errorf("retry complaint refunds: %w", err)
	}
	ops := make([]*eventstore.Op, len(retries))
	refs := make([]contract.ComplaintRef, len(retries))
	for i, x := range retries {
		cid, pid, failed := x.ComplaintID, x.PaymentID, x.RefundID
		refs[i] = contract.ComplaintRef{ComplaintID: cid, PaymentID: pid}
		payee, found := payees[pid]
		if !found {
			ops[i] = nil // fails alone, below
			continue
		}
		meta := callerMetadata(c, pid.String())
		meta.CausationID = cid.String()
		rid := ids.ComplaintRefund(cid, x.Attempt+1)
		failedClose, settle := ids.StepEvent(failed, ids.StepClose), complaintSettle(cid)
		retry := eventstore.NewOp(ComplaintAggregate(), events.ComplaintStream(pid.String()),
			func(state domain.Complaints, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
				refund, err := refunding(r, rid)
				if err != nil {
					return nil, err
				}
				p, err := state.Retry(cid.String(), failed.String(), refund)
				if err != nil {
					return nil, fmt.Errorf("complaint %s: %w", cid, err)
				}
				if p.Attempt != x.Attempt+1 {
					return nil, fmt.Errorf("%w: complaint %s is at attempt %d", ErrStepPrecondition, cid, p.Attempt-1)
				}
				return complaintEvents(cid, []events.Payload{p}, meta), nil
			})
		// The merchant's balance, read under its account's lock, must cover the refund, so that a retry
		// is not spent on a debit bound to fail. It appends nothing.
		covered := eventstore.NewOp(AccountAggregate(), payee,
			func(a domain.Account, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
				refund, err := refunding(r, rid)
				if err != nil {
					return nil, err
				}
				if a.Closed || int64(a.Balance) < refund.Amount {
					return nil, fmt.Errorf("%w: complaint %s: the merchant's balance does not cover the refund", ErrStepPrecondition, cid)
				}
				return nil, nil
			})
		op := disputeRefund(pid, rid, cid.String(), meta, func(p domain.Payment, r eventstore.Reads) (bool, error) {
			if _, pending := p.PendingRefunds[failed.String()]; pending {
				return false, fmt.Errorf("%w: complaint %s: refund %s is still pending", ErrStepPrecondition, cid, failed)
			}
			if recorded(r, failedClose) != events.RefundFailed {
				return false, fmt.Errorf("%w: complaint %s: refund %s did not fail (%s)", domain.ErrComplaintClosed, cid, failed, recorded(r, failedClose))
			}
			return recorded(r, settle) == events.ChargebackRaised, nil
		})
		op.Needs = []uuid.UUID{failedClose, settle}
		op.Origins = []string{payee}
		op.With = []*eventstore.Op{retry, covered}
		ops[i] = op
	}
	return s.complaintOutcomes(ctx, "retry complaint refunds", refs, ops)
}
