// Package webhooks tells clients about the state changes of what they own (docs/webhooks.md). Two parts:
//
//   - Deliveries, a checkpointed consumer of the log (runner.Processor, "webhooks"): each state change of a
//     payment, refund, collect request or withdrawal becomes one delivery per enabled endpoint of each client
//     that owns the resource (the payer's owner and the payee's owner, each their own), with the body it
//     will be sent with. A batch's deliveries are one insert (each delivery's row and its pending row, the
//     sender's queue), made before the checkpoint moves and deduplicated by (endpoint, event), so a crash
//     repeats the insert and never loses or doubles one.
//   - Sender, the periodic job that sends them: one worker per endpoint with work due, so that a slow or
//     dead endpoint only ever delays itself; per resource in log order (a delivery waits until the ones
//     before it of the same resource and endpoint are done); retried with exponential back-off and jitter,
//     honouring Retry-After, until it succeeds or ages out; an endpoint failing for long is disabled.
package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/ids"
	"upi/shared/contract/webhook"
	"upi/shared/platform/eventstore"
)

// Name is the consumer's checkpoint and lock.
const Name = "webhooks"

// Delivery is one event to be delivered to the endpoints of one client.
type Delivery struct {
	EventID    uuid.UUID
	Type       string // the public type: payment.completed
	ResourceID string
	Body       []byte
	CreatedAt  time.Time
	Client     string
}

// Store queues deliveries (adapters/postgres).
type Store interface {
	// Queue inserts, for each delivery, one row per enabled endpoint of its client that wants its type and
	// was registered before the event, in the order given; a row already queued is left alone. It returns
	// how many rows it inserted.
	Queue(ctx context.Context, ds []Delivery) (int, error)
}

// History reads what the consumer did not see since it started: the opening events of streams, and
// events by id (eventstore.Store).
type History interface {
	Origins(ctx context.Context, streams ...string) (map[string]eventstore.Event, error)
	EventsByID(ctx context.Context, ids ...uuid.UUID) ([]eventstore.Event, error)
}

// Deliveries is the consumer that turns the log's state changes into deliveries.
type Deliveries struct {
	store   Store
	history History
	queued  func() // told when a batch queued something (the sender's wake-up)

	// What the resources looked like at the last event seen, so that an event that carries only an id
	// (PaymentCompleted) can be shown as the API shows the resource. A resource missing here (the process
	// restarted in the middle of it) is read back from the log. Terminal resources are forgotten.
	owners   map[string]string // vpa -> owning client
	payments map[string]*contract.Payment
	refunds  map[string]*contract.Refund
	collects map[string]*contract.Collect
}

// NewDeliveries returns the consumer; queued (may be nil) is called after a batch queued deliveries.
func NewDeliveries(store Store, history History, queued func()) *Deliveries {
	if queued == nil {
		queued = func() {}
	}
	return &Deliveries{store: store, history: history, queued: queued, owners: map[string]string{},
		payments: map[string]*contract.Payment{}, refunds: map[string]*contract.Refund{}, collects: map[string]*contract.Collect{}}
}

// Name implements runner.Consumer.
func (d *Deliveries) Name() string { return Name }

// Handle implements runner.Processor: the batch's state changes, queued in one insert.
func (d *Deliveries) Handle(ctx context.Context, batch []eventstore.Event) error {
	var out []Delivery
	for _, e := range batch {
		ds, err := d.add(ctx, e)
		if err != nil {
			return fmt.Errorf("webhooks: event %s (%s): %w", e.ID, e.Type, err)
		}
		out = append(out, ds...)
	}
	if len(out) == 0 {
		return nil
	}
	n, err := d.store.Queue(ctx, out)
	if err != nil {
		return err
	}
	if n > 0 {
		d.queued()
	}
	return nil
}

// change is a state change: its public type, the resource id, the resource as the API shows it, and the
// accounts whose owners are told.
type change struct {
	typ      string
	resource string
	data     any
	vpas     []string
}

// add notes what e tells about the resources and returns its deliveries, if it is a state change.
func (d *Deliveries) add(ctx context.Context, e eventstore.Event) ([]Delivery, error) {
	c, err := d.changeOf(ctx, e)
	if err != nil || c == nil {
		return nil, err
	}
	body, err := json.Marshal(webhook.Envelope[any]{ID: e.ID.String(), Type: c.typ, CreatedAt: contract.Time(e.CreatedAt), Data: c.data})
	if err != nil {
		return nil, err
	}
	var out []Delivery
	seen := map[string]bool{}
	for _, v := range c.vpas {
		owner, err := d.owner(ctx, v)
		if err != nil {
			return nil, err
		}
		if owner == "" || seen[owner] {
			continue // one delivery per client, even when it owns both sides
		}
		seen[owner] = true
		out = append(out, Delivery{EventID: e.ID, Type: c.typ, ResourceID: c.resource, Body: body, CreatedAt: e.CreatedAt, Client: owner})
	}
	return out, nil
}

func (d *Deliveries) changeOf(ctx context.Context, e eventstore.Event) (*change, error) {
	switch e.Type {
	case events.AccountOpened, events.AccountDebited, events.RefundDebited,
		events.PaymentInitiated, events.PaymentCompleted, events.PaymentFailed,
		events.RefundInitiated, events.RefundCompleted, events.RefundFailed,
		events.CollectRequested, events.CollectApproved, events.CollectDeclined, events.CollectExpired,
		events.FundsWithdrawn, events.WithdrawalRejected:
	default:
		return nil, nil // nothing a client is told about, nor needed to tell it
	}
	p, err := eventstore.PayloadOf(e, events.Decode)
	if err != nil {
		return nil, err
	}
	switch p := p.(type) {
	case events.AccountOpenedV1:
		d.owners[p.VPA] = p.OwnerClientID
	case events.AccountDebitedV1:
		if pay := d.payments[p.PaymentID]; pay != nil && p.RRN != "" {
			pay.RRN = p.RRN
		}
	case events.RefundDebitedV1:
		if r := d.refunds[p.RefundID]; r != nil {
			r.RRN = p.RRN
		}
	case events.PaymentInitiatedV1:
		pay := paymentOpened(e, p)
		d.payments[p.PaymentID] = pay
		return paymentChange(webhook.PaymentCreated, pay, e), nil
	case events.PaymentCompletedV1:
		pay, err := d.payment(ctx, p.PaymentID)
		if err != nil {
			return nil, err
		}
		pay.Status = contract.PaymentCompleted
		delete(d.payments, p.PaymentID)
		return paymentChange(webhook.PaymentCompleted, pay, e), nil
	case events.PaymentFailedV1:
		pay, err := d.payment(ctx, p.PaymentID)
		if err != nil {
			return nil, err
		}
		pay.Status = contract.PaymentFailed
		pay.FailureCode, pay.NPCICode = codes(p.Code)
		delete(d.payments, p.PaymentID)
		return paymentChange(webhook.PaymentFailed, pay, e), nil
	case events.RefundInitiatedV1:
		r := refundOpened(e, p)
		d.refunds[p.RefundID] = r
		return refundChange(webhook.RefundCreated, r, p.RefundTerms, e), nil
	case events.RefundCompletedV1:
		r, err := d.refund(ctx, p.RefundID)
		if err != nil {
			return nil, err
		}
		r.Status = contract.PaymentCompleted
		delete(d.refunds, p.RefundID)
		return refundChange(webhook.RefundCompleted, r, p.RefundTerms, e), nil
	case events.RefundFailedV1:
		r, err := d.refund(ctx, p.RefundID)
		if err != nil {
			return nil, err
		}
		r.Status = contract.PaymentFailed
		r.FailureCode, r.NPCICode = codes(p.Code)
		delete(d.refunds, p.RefundID)
		return refundChange(webhook.RefundFailed, r, p.RefundTerms, e), nil
	case events.CollectRequestedV1:
		c := collectOpened(e, p)
		d.collects[p.CollectID] = c
		return collectChange(webhook.CollectCreated, c, e), nil
	case events.CollectApprovedV1:
		return d.collectEnded(ctx, e, p.CollectTerms, contract.CollectApproved, webhook.CollectApproved, "", p.PaymentID)
	case events.CollectDeclinedV1:
		return d.collectEnded(ctx, e, p.CollectTerms, contract.CollectDeclined, webhook.CollectDeclined, events.NPCICollectDeclined, "")
	case events.CollectExpiredV1:
		return d.collectEnded(ctx, e, p.CollectTerms, contract.CollectExpired, webhook.CollectExpired, events.NPCICollectExpired, "")
	case events.FundsWithdrawnV1:
		w := contract.Withdrawal{WithdrawalID: p.WithdrawalID, VPA: p.VPA, AmountPaise: p.AmountPaise, Reference: p.Reference,
			Status: contract.PaymentCompleted, RRN: p.RRN, CreatedAt: contract.Time(e.CreatedAt), UpdatedAt: contract.Time(e.CreatedAt),
			Position: e.Position.Token()}
		return &change{typ: webhook.WithdrawalCompleted, resource: p.WithdrawalID, data: w, vpas: []string{p.VPA}}, nil
	case events.WithdrawalRejectedV1:
		w := contract.Withdrawal{WithdrawalID: p.WithdrawalID, VPA: p.VPA, AmountPaise: p.AmountPaise, Reference: p.Reference,
			Status: contract.PaymentFailed, CreatedAt: contract.Time(e.CreatedAt), UpdatedAt: contract.Time(e.CreatedAt),
			Position: e.Position.Token()}
		w.FailureCode, w.NPCICode = codes(p.Code)
		return &change{typ: webhook.WithdrawalFailed, resource: p.WithdrawalID, data: w, vpas: []string{p.VPA}}, nil
	}
	return nil, nil
}

// codes are a failure's code and its NPCI code, as the API shows them.
func codes(code string) (*string, *string) {
	c := code
	var npci *string
	if n := events.NPCICode(code); n != "" {
		npci = &n
	}
	return &c, npci
}

func paymentOpened(e eventstore.Event, p events.PaymentInitiatedV1) *contract.Payment {
	txn := p.UPITxnID
	if txn == "" {
		if id, err := uuid.Parse(p.PaymentID); err == nil {
			txn = ids.UPITxnID(id)
		}
	}
	return &contract.Payment{PaymentID: p.PaymentID, UPITxnID: txn, PayerVPA: p.PayerVPA, PayeeVPA: p.PayeeVPA,
		AmountPaise: p.AmountPaise, Currency: "INR", Note: p.Note, Status: contract.PaymentPending,
		MerchantReference: p.MerchantReference, MandateID: p.MandateID, CreatedAt: contract.Time(e.CreatedAt)}
}

func paymentChange(typ string, pay *contract.Payment, e eventstore.Event) *change {
	out := *pay
	out.UpdatedAt, out.Position = contract.Time(e.CreatedAt), e.Position.Token()
	return &change{typ: typ, resource: pay.PaymentID, data: out, vpas: []string{pay.PayerVPA, pay.PayeeVPA}}
}

func refundOpened(e eventstore.Event, p events.RefundInitiatedV1) *contract.Refund {
	return &contract.Refund{RefundID: p.RefundID, PaymentID: p.PaymentID, UPITxnID: p.UPITxnID, AmountPaise: p.AmountPaise,
		Reason: p.Reason, Status: contract.PaymentPending, CreatedAt: contract.Time(e.CreatedAt)}
}

func refundChange(typ string, r *contract.Refund, terms events.RefundTerms, e eventstore.Event) *change {
	out := *r
	out.UpdatedAt, out.Position = contract.Time(e.CreatedAt), e.Position.Token()
	return &change{typ: typ, resource: r.RefundID, data: out, vpas: []string{terms.PayerVPA, terms.PayeeVPA}}
}

func collectOpened(e eventstore.Event, p events.CollectRequestedV1) *contract.Collect {
	return &contract.Collect{CollectID: p.CollectID, PayeeVPA: p.PayeeVPA, PayerVPA: p.PayerVPA, AmountPaise: p.AmountPaise,
		Note: p.Note, Status: contract.CollectPending, ExpiresAt: p.ExpiresAt, CreatedAt: contract.Time(e.CreatedAt)}
}

func collectChange(typ string, c *contract.Collect, e eventstore.Event) *change {
	out := *c
	out.UpdatedAt, out.Position = contract.Time(e.CreatedAt), e.Position.Token()
	return &change{typ: typ, resource: c.CollectID, data: out, vpas: []string{c.PayeeVPA, c.PayerVPA}}
}

func (d *Deliveries) collectEnded(ctx context.Context, e eventstore.Event, terms events.CollectTerms, status, typ, npci, payment string) (*change, error) {
	c, err := d.collect(ctx, terms.CollectID)
	if err != nil {
		return nil, err
	}
	delete(d.collects, terms.CollectID)
	c.Status = status
	if npci != "" {
		c.NPCICode = &npci
	}
	if payment != "" {
		c.PaymentID = &payment
	}
	return collectChange(typ, c, e), nil
}

// owner is the client owning account vpa ("" for none: not an account's, such as a settlement stream).
func (d *Deliveries) owner(ctx context.Context, vpa string) (string, error) {
	if o, ok := d.owners[vpa]; ok {
		return o, nil
	}
	opening, found, err := d.opening(ctx, vpa)
	if err != nil || !found {
		return "", err
	}
	p, err := eventstore.PayloadOf(opening, events.Decode)
	if err != nil {
		return "", err
	}
	if a, ok := p.(events.AccountOpenedV1); ok {
		d.owners[vpa] = a.OwnerClientID
		return a.OwnerClientID, nil
	}
	return "", nil
}

func (d *Deliveries) opening(ctx context.Context, stream string) (eventstore.Event, bool, error) {
	origins, err := d.history.Origins(ctx, stream)
	if err != nil {
		return eventstore.Event{}, false, err
	}
	e, ok := origins[stream]
	return e, ok, nil
}

// stepEvent is the event of a step of a payment or refund (its debit), if it happened.
func (d *Deliveries) stepEvent(ctx context.Context, id, step string) (eventstore.Event, bool, error) {
	uid, err := uuid.Parse(id)
	if err != nil {
		return eventstore.Event{}, false, nil
	}
	evs, err := d.history.EventsByID(ctx, ids.StepEvent(uid, step))
	if err != nil || len(evs) == 0 {
		return eventstore.Event{}, false, err
	}
	return evs[0], true, nil
}

// payment is the payment as last seen, read back from the log when this process did not see it open.
func (d *Deliveries) payment(ctx context.Context, id string) (*contract.Payment, error) {
	if pay := d.payments[id]; pay != nil {
		return pay, nil
	}
	opening, found, err := d.opening(ctx, id)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("payment %s has no opening event", id)
	}
	p, err := eventstore.PayloadOf(opening, events.Decode)
	if err != nil {
		return nil, err
	}
	init, ok := p.(events.PaymentInitiatedV1)
	if !ok {
		return nil, fmt.Errorf("payment %s opens with %s", id, opening.Type)
	}
	pay := paymentOpened(opening, init)
	if debit, found, err := d.stepEvent(ctx, id, ids.StepDebit); err != nil {
		return nil, err
	} else if found && debit.Type == events.AccountDebited {
		if p, err := eventstore.PayloadOf(debit, events.Decode); err == nil {
			if a, ok := p.(events.AccountDebitedV1); ok {
				pay.RRN = a.RRN
			}
		}
	}
	return pay, nil
}

// refund is the refund as last seen, read back from the log when this process did not see it open.
func (d *Deliveries) refund(ctx context.Context, id string) (*contract.Refund, error) {
	if r := d.refunds[id]; r != nil {
		return r, nil
	}
	opening, found, err := d.opening(ctx, id)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("refund %s has no opening event", id)
	}
	p, err := eventstore.PayloadOf(opening, events.Decode)
	if err != nil {
		return nil, err
	}
	init, ok := p.(events.RefundInitiatedV1)
	if !ok {
		return nil, fmt.Errorf("refund %s opens with %s", id, opening.Type)
	}
	r := refundOpened(opening, init)
	if debit, found, err := d.stepEvent(ctx, id, ids.StepDebit); err != nil {
		return nil, err
	} else if found && debit.Type == events.RefundDebited {
		if p, err := eventstore.PayloadOf(debit, events.Decode); err == nil {
			if a, ok := p.(events.RefundDebitedV1); ok {
				r.RRN = a.RRN
			}
		}
	}
	return r, nil
}

// collect is the collect request as last seen, read back from the log when this process did not see it.
func (d *Deliveries) collect(ctx context.Context, id string) (*contract.Collect, error) {
	if c := d.collects[id]; c != nil {
		return c, nil
	}
	opening, found, err := d.opening(ctx, id)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("collect request %s has no opening event", id)
	}
	p, err := eventstore.PayloadOf(opening, events.Decode)
	if err != nil {
		return nil, err
	}
	req, ok := p.(events.CollectRequestedV1)
	if !ok {
		return nil, fmt.Errorf("collect request %s opens with %s", id, opening.Type)
	}
	return collectOpened(opening, req), nil
}
