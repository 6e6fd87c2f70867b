package app

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"upi/command-service/internal/domain"
	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/ids"
	"upi/shared/platform/eventstore"
)

// MandateSettings are the mandates' rules and the default time a payer has to approve a request.
type MandateSettings struct {
	Rules         domain.MandateRules
	RequestExpiry time.Duration // MANDATE_REQUEST_EXPIRY
}

// DefaultMandateSettings: NPCI's rules, and a day to approve a request.
var DefaultMandateSettings = MandateSettings{Rules: domain.DefaultMandateRules, RequestExpiry: 24 * time.Hour}

// WithMandates sets the mandates' rules (MANDATE_* settings).
func (s *Service) WithMandates(m MandateSettings) *Service {
	s.mandates = &m
	return s
}

func (s *Service) mandateSettings() MandateSettings {
	if s.mandates == nil {
		return DefaultMandateSettings
	}
	return *s.mandates
}

// MandateAggregate is how the event store rebuilds a mandate. A mandate's stream grows by a few events per
// debit: at most a few hundred over years, folded in well under a millisecond, so it is not snapshotted.
func MandateAggregate() eventstore.Aggregate[domain.Mandate] {
	return eventstore.Aggregate[domain.Mandate]{Type: events.AggregateMandate, Evolve: evolvePayload(domain.Mandate.Evolve)}
}

// RequestMandate opens a mandate on its own stream: the caller owns the payee, an ENTITY; the payer
// exists. Its id is derived from the caller's idempotency key, its UMN from its id.
func (s *Service) RequestMandate(ctx context.Context, c Caller, cmd contract.RequestMandate) (contract.Mandate, bool, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	id := effectID(c, contract.PathMandates)
	fp := fingerprint(struct {
		Command   string `json:"command"`
		Payer     string `json:"payer_vpa"`
		Payee     string `json:"payee_vpa"`
		Amount    int64  `json:"amount_paise"`
		Rule      string `json:"amount_rule"`
		Frequency string `json:"frequency"`
		From      string `json:"valid_from"`
		Until     string `json:"valid_until"`
		Revocable bool   `json:"revocable"`
		Purpose   string `json:"purpose"`
		ExpiresIn int64  `json:"expires_in_seconds"`
	}{"request_mandate", cmd.Payer.String(), cmd.Payee.String(), int64(cmd.Amount.Paise()), cmd.AmountRule, cmd.Frequency,
		cmd.ValidFromText, cmd.ValidUntilText, cmd.Revocable, cmd.Purpose, int64(cmd.ExpiresIn / time.Second)})
	expiresIn := cmd.ExpiresIn
	if expiresIn == 0 {
		expiresIn = s.mandateSettings().RequestExpiry
	}
	payer, payee := cmd.Payer.String(), cmd.Payee.String()
	op := clientOp(MandateAggregate(), id.String(), id, clientMetadata(c, id.String(), fp),
		func(m domain.Mandate, r eventstore.Reads) (events.Payload, error) {
			payeeOpened, found, err := accountOpening(r, payee)
			if err != nil {
				return nil, err
			}
			if !found || payeeOpened.OwnerClientID != c.ClientID {
				return nil, fmt.Errorf("payee %s: %w", payee, domain.ErrAccountNotFound)
			}
			payerOpened, found, err := accountOpening(r, payer)
			if err != nil {
				return nil, err
			}
			if !found {
				return nil, fmt.Errorf("payer %s: %w", payer, ErrPayerNotFound)
			}
			return m.Request(domain.RequestMandate{PayeeType: payeeOpened.Kind(), MandateRequestedV1: events.MandateRequestedV1{
				MandateTerms: events.MandateTerms{MandateID: id.String()}, UMN: ids.UMN(id, handleOf(payer)),
				PayerVPA: payer, PayeeVPA: payee, AmountPaise: int64(cmd.Amount.Paise()), AmountRule: cmd.AmountRule,
				Frequency: cmd.Frequency, ValidFrom: events.Time(cmd.ValidFrom), ValidUntil: events.Time(cmd.ValidUntil),
				Revocable: cmd.Revocable, Purpose: cmd.Purpose, ClientID: c.ClientID, PayerClient: payerOpened.OwnerClientID,
				ExpiresAt: events.Time(r.Now().Add(expiresIn))}})
		})
	op.Origins = []string{payee, payer}
	out, err := commitClientCommand[events.MandateRequestedV1](ctx, s, op, fp, "request mandate "+id.String())
	if err != nil {
		return contract.Mandate{}, false, err
	}
	m, err := s.mandateAnswer(ctx, id, out.event)
	return m, out.replayed, err
}

// mandateAnswer is the mandate as it stands after e, its last change by the command being answered.
func (s *Service) mandateAnswer(ctx context.Context, id uuid.UUID, e eventstore.Event) (contract.Mandate, error) {
	m, _, err := eventstore.LoadState(ctx, s.store, MandateAggregate(), id.String())
	if err != nil {
		return contract.Mandate{}, fmt.Errorf("load mandate %s: %w", id, err)
	}
	return MandateResource(m, e.Position.Token()), nil
}

// MandateResource is the mandate resource of state m.
func MandateResource(m domain.Mandate, pos string) contract.Mandate {
	out := contract.Mandate{MandateID: m.MandateID, UMN: m.UMN, PayerVPA: m.PayerVPA, PayeeVPA: m.PayeeVPA,
		AmountPaise: m.AmountPaise, AmountRule: m.AmountRule, Frequency: m.Frequency, ValidFrom: m.ValidFrom,
		ValidUntil: m.ValidUntil, Revocable: m.Revocable, Purpose: m.Purpose, Status: m.Status, ExpiresAt: m.ExpiresAt,
		Debits: []contract.MandateDebit{}, Position: pos}
	switch m.Status {
	case domain.MandateDeclined:
		code := events.NPCIMandateDeclined
		out.NPCICode = &code
	case domain.MandateExpired:
		code := events.NPCIMandateExpired
		out.NPCICode = &code
	}
	for _, id := range m.Order {
		out.Debits = append(out.Debits, debitResource(m, m.Debits[id]))
	}
	return out
}

func debitResource(m domain.Mandate, d domain.Debit) contract.MandateDebit {
	out := contract.MandateDebit{NotificationID: d.ID, MandateID: m.MandateID, AmountPaise: d.Amount,
		DebitAt: events.Time(d.DebitAt), ExecuteAt: events.Time(d.ExecuteAt), NeedsApproval: d.NeedsApproval,
		Approved: d.Approved, Status: d.Status, Attempt: d.Attempt}
	if d.NeedsApproval {
		out.ApproveBy = events.Time(d.ApproveBy)
	}
	if d.PaymentID != "" {
		pid := d.PaymentID
		out.PaymentID = &pid
	}
	if d.Code != "" && d.Status != domain.DebitSucceeded {
		code := d.Code
		out.FailureCode = &code
	}
	return out
}

// mandateOpening is the mandate's MandateRequested, read before its lock (an opening never changes): it
// names the accounts whose owners may act on it.
func (s *Service) mandateOpening(ctx context.Context, id uuid.UUID) (events.MandateRequestedV1, error) {
	mid := id.String()
	origins, err := s.store.Origins(ctx, mid)
	if err != nil {
		return events.MandateRequestedV1{}, fmt.Errorf("look up mandate %s: %w", mid, err)
	}
	opening, found := origins[mid]
	if !found || opening.Type != events.MandateRequested {
		return events.MandateRequestedV1{}, fmt.Errorf("mandate %s: %w", mid, domain.ErrMandateNotFound)
	}
	return decode[events.MandateRequestedV1](opening)
}

// Parties who may act on a mandate.
const (
	MandatePayer  = "PAYER"
	MandatePayee  = "PAYEE"
	MandateEither = "EITHER"
)

// MandateAction is a party's decision on a mandate: the events it appends (none: a repeat, answered as
// the mandate stands).
type MandateAction func(m domain.Mandate, party string, now time.Time) ([]events.Payload, error)

// ActOnMandate runs a decision of the mandate's payer's owner, or payee's owner (who), on mandate id, with
// the caller's idempotency key scoping its event ids (path names the action). Anyone else is told the
// mandate does not exist.
func (s *Service) ActOnMandate(ctx context.Context, c Caller, id uuid.UUID, path, who string, act MandateAction) (contract.Mandate, bool, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	opening, err := s.mandateOpening(ctx, id)
	if err != nil {
		return contract.Mandate{}, false, err
	}
	eid := effectID(c, path)
	meta := callerMetadata(c, id.String())
	op := eventstore.NewOp(MandateAggregate(), id.String(), func(m domain.Mandate, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
		party := ""
		if owner, err := ownerOf(r, opening.PayerVPA); err != nil {
			return nil, err
		} else if owner == c.ClientID && who != MandatePayee {
			party = MandatePayer
		}
		if owner, err := ownerOf(r, opening.PayeeVPA); err != nil {
			return nil, err
		} else if party == "" && owner == c.ClientID && who != MandatePayer {
			party = MandatePayee
		}
		if party == "" {
			return nil, fmt.Errorf("mandate %s: the caller may not act on it: %w", id, domain.ErrMandateNotFound)
		}
		ps, err := act(m, party, r.Now())
		if err != nil {
			return nil, err
		}
		return mandateEvents(eid, ps, meta), nil
	})
	op.Dedupe = eid
	op.Origins = []string{opening.PayerVPA, opening.PayeeVPA}
	res, err := s.commit.Execute(ctx, op)
	if err != nil {
		return contract.Mandate{}, false, fmt.Errorf("mandate %s %s: %w", id, path, err)
	}
	var last eventstore.Event
	if e := res.Last(); e != nil {
		last = *e
	}
	m, err := s.mandateAnswer(ctx, id, last)
	if err == nil && last.ID == uuid.Nil {
		// A repeat that appended nothing (approving an active mandate): its position is the log's head,
		// which every event the answer reflects is at or before.
		var head eventstore.Position
		if head, _, err = s.store.Head(ctx); err == nil {
			m.Position = head.Token()
		}
	}
	return m, res.Replayed, err
}

// mandateEvents are a decision's payloads as events: the first takes id, the others ids derived from it.
func mandateEvents(id uuid.UUID, ps []events.Payload, meta events.Metadata) []eventstore.NewEvent {
	out := make([]eventstore.NewEvent, len(ps))
	for i, p := range ps {
		eid := id
		if i > 0 {
			eid = ids.StepEvent(id, "then-"+strconv.Itoa(i))
		}
		out[i] = eventstore.NewEvent{ID: eid, Type: p.EventType(), Data: p, Metadata: meta}
	}
	return out
}

// NotifyDebit records the merchant's pre-debit notification, checked against the mandate's rules under
// the mandate's lock: concurrent notifications racing the frequency rule are decided one after the other,
// on the stream as the one before left it, so exactly as many succeed as the rule allows.
func (s *Service) NotifyDebit(ctx context.Context, c Caller, cmd contract.NotifyDebit) (contract.MandateDebit, bool, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	opening, err := s.mandateOpening(ctx, cmd.MandateID)
	if err != nil {
		return contract.MandateDebit{}, false, err
	}
	path := contract.PathMandates + "/" + cmd.MandateID.String() + "/notifications"
	nid := effectID(c, path)
	fp := fingerprint(struct {
		Command string `json:"command"`
		Amount  int64  `json:"amount_paise"`
		DebitAt string `json:"debit_at"`
	}{"notify_debit", int64(cmd.Amount.Paise()), events.Time(cmd.DebitAt)})
	rules := s.mandateSettings().Rules
	op := clientOp(MandateAggregate(), cmd.MandateID.String(), nid, clientMetadata(c, cmd.MandateID.String(), fp),
		func(m domain.Mandate, r eventstore.Reads) (events.Payload, error) {
			owner, err := ownerOf(r, opening.PayeeVPA)
			if err != nil {
				return nil, err
			}
			if owner != c.ClientID {
				return nil, fmt.Errorf("mandate %s: %w", cmd.MandateID, domain.ErrMandateNotFound)
			}
			return m.Notify(nid.String(), int64(cmd.Amount.Paise()), cmd.DebitAt, c.ClientID, rules, r.Now())
		})
	op.Origins = []string{opening.PayeeVPA}
	out, err := commitClientCommand[events.MandateDebitNotifiedV1](ctx, s, op, fp, "notify debit "+nid.String())
	if err != nil {
		return contract.MandateDebit{}, false, err
	}
	m, _, err := eventstore.LoadState(ctx, s.store, MandateAggregate(), cmd.MandateID.String())
	if err != nil {
		return contract.MandateDebit{}, false, err
	}
	d := debitResource(m, m.Debits[nid.String()])
	d.Position = out.event.Position.Token()
	return d, out.replayed, nil
}

// attemptEvent is the id of attempt n of debit nid's MandateDebitAttempted.
func attemptEvent(nid uuid.UUID, n int) uuid.UUID {
	return ids.StepEvent(nid, "attempt-"+strconv.Itoa(n))
}

// timerEventID is the deterministic id of an event a mandate's timer appends: each names its own slot, so
// that a timer firing twice (two ticks, two replicas, a retried call) can never append it twice.
func timerEventID(mandate uuid.UUID, p events.Payload) uuid.UUID {
	switch p := p.(type) {
	case events.MandateDebitAttemptedV1:
		return attemptEvent(uuid.MustParse(p.NotificationID), p.Attempt)
	case events.MandateDebitRetryScheduledV1:
		return ids.StepEvent(uuid.MustParse(p.NotificationID), "retry-"+strconv.Itoa(p.Attempt))
	case events.MandateDebitSucceededV1:
		return ids.StepEvent(uuid.MustParse(p.NotificationID), ids.StepClose)
	case events.MandateDebitFailedV1:
		return ids.StepEvent(uuid.MustParse(p.NotificationID), ids.StepClose)
	}
	return ids.StepEvent(mandate, ids.StepClose) // expiry or completion: the mandate ends once
}

// TimerOutcome is what one mandate timer appended, or the error that failed it alone.
type TimerOutcome struct {
	EventTypes []string
	Err        error
}

// AdvanceMandates decides, for each item, what is due now (by the database's clock): a pending mandate's
// expiry, a mandate's completion at the end of its validity, and a debit's next step: its attempt (a
// normal payment carrying mandate_id, initiated in the same transaction, with the id
// ids.MandatePayment(mandate, notification, attempt)), its retry after a failure for the payer's funds, its
// success or failure. Everything is decided from the log under the mandate's lock and every event id is
// deterministic, so a timer that fires twice appends nothing the second time.
func (s *Service) AdvanceMandates(ctx context.Context, c Caller, items []contract.MandateTimer) ([]TimerOutcome, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	rules := s.mandateSettings().Rules
	ops := make([]*eventstore.Op, len(items))
	for i, it := range items {
		// The state before the lock says which attempt comes next and which payment runs; the decision
		// under the lock appends an attempt only if it is still that one.
		m, _, err := eventstore.LoadState(ctx, s.store, MandateAggregate(), it.MandateID.String())
		if err != nil {
			return nil, fmt.Errorf("load mandate %s: %w", it.MandateID, err)
		}
		ops[i] = s.advanceOp(c, it, m, rules)
	}
	results, err := s.store.ExecuteAll(ctx, ops)
	if err != nil {
		return nil, fmt.Errorf("advance mandates: %w", err)
	}
	out := make([]TimerOutcome, len(items))
	for i, r := range results {
		if r.Err != nil {
			out[i].Err = fmt.Errorf("advance mandate %s: %w", items[i].MandateID, r.Err)
			continue
		}
		for _, e := range r.Result.Events {
			out[i].EventTypes = append(out[i].EventTypes, e.Type)
		}
	}
	return out, nil
}

func (s *Service) advanceOp(c Caller, it contract.MandateTimer, seen domain.Mandate, rules domain.MandateRules) *eventstore.Op {
	mid, nid := it.MandateID, it.NotificationID
	d, known := seen.Debits[nid.String()]
	next := d.Attempt + 1
	pid := ids.MandatePayment(mid, nid, next)
	meta := callerMetadata(c, mid.String())
	var running uuid.UUID // the close event of the payment that runs, if one does
	if d.Status == domain.DebitExecuting {
		running = ids.StepEvent(ids.MandatePayment(mid, nid, d.Attempt), ids.StepClose)
	}
	op := eventstore.NewOp(MandateAggregate(), mid.String(), func(m domain.Mandate, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
		var outcome domain.PaymentOutcome
		if running != uuid.Nil {
			if e, ok := r.Event(running); ok {
				outcome.Ended, outcome.Completed = true, e.Type == events.PaymentCompleted
				if f, err := decode[events.PaymentFailedV1](e); err == nil {
					outcome.Code = f.Code
				}
			}
		}
		ps, err := m.Advance(nid.String(), r.Now(), rules, func(n int) string { return ids.MandatePayment(mid, nid, n).String() }, outcome)
		if err != nil {
			return nil, err
		}
		evs := make([]eventstore.NewEvent, 0, len(ps))
		for _, p := range ps {
			if a, ok := p.(events.MandateDebitAttemptedV1); ok && a.Attempt != next {
				return nil, nil // the stream moved since it was read: the next tick decides on it afresh
			}
			em := meta
			em.CausationID = nid.String()
			evs = append(evs, eventstore.NewEvent{ID: timerEventID(mid, p), Type: p.EventType(), Data: p, Metadata: em})
		}
		return evs, nil
	})
	if running != uuid.Nil {
		op.Needs = []uuid.UUID{running}
	}
	op.Origins = []string{seen.PayerVPA, seen.PayeeVPA}
	if !known || !d.Open() {
		return op
	}
	// The attempt's payment, initiated with its MandateDebitAttempted or not at all.
	attempted := attemptEvent(nid, next)
	payMeta := callerMetadata(Caller{ClientID: seen.PayerClient, RequestID: c.RequestID, TraceParent: c.TraceParent}, pid.String())
	payMeta.CausationID = attempted.String()
	pay := eventstore.NewOp(PaymentAggregate(), pid.String(), func(p domain.Payment, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
		if _, ok := r.Event(attempted); !ok {
			return nil, nil // no attempt decided in this group: nothing to initiate
		}
		cmd, err := mandatePayment(seen, d.Amount)
		if err != nil {
			return nil, err
		}
		payeeType, err := payeeKind(r, seen.PayeeVPA)
		if err != nil {
			return nil, err
		}
		cmd.ID, cmd.Client, cmd.UPITxnID, cmd.PayeeType = pid.String(), seen.PayerClient, ids.UPITxnID(pid), payeeType
		out, err := p.Initiate(cmd)
		if err != nil {
			return nil, err
		}
		out.MandateID = mid.String()
		return newEvent(pid, out, payMeta), nil
	})
	pay.Origins = []string{seen.PayerVPA, seen.PayeeVPA}
	op.With = []*eventstore.Op{pay}
	return op
}

// mandatePayment is the payment of one debit of mandate m.
func mandatePayment(m domain.Mandate, amount int64) (domain.InitiatePayment, error) {
	req := collectRequest{CollectRequestedV1: events.CollectRequestedV1{CollectTerms: events.CollectTerms{
		PayeeVPA: m.PayeeVPA, PayerVPA: m.PayerVPA, AmountPaise: amount}, Note: "AutoPay " + m.Purpose}}
	cmd, err := req.payment()
	if len([]rune(cmd.Note)) > 100 {
		cmd.Note = string([]rune(cmd.Note)[:100])
	}
	return cmd, err
}

// handleOf is the handle of a VPA (after its "@").
func handleOf(v string) string {
	_, handle, _ := strings.Cut(v, "@")
	return handle
}
