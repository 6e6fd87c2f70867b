package postgres

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"

	"upi/query-service/internal/app"
	"upi/shared/contract"
	"upi/shared/platform/eventstore"
	"upi/shared/platform/pii"
)

// OpeningReader is the Reader whose answers show the personal data of the read models (sealed as the log
// has it: holder names, notes, refund reasons, the audit trail's event data) opened with their people's
// keys, or "[erased]" where a key was destroyed (docs/architecture.md, "Personal data and erasure"). The
// keys are read in one more statement, only when an answer holds something sealed, and never cached, so
// that an erasure holds from the very next read. An erased account's own name reads "[erased]" even when
// it was written before sealing existed.
type OpeningReader struct{ *Reader }

func (r *OpeningReader) open(ctx context.Context, f pii.Fields) error {
	if err := pii.OpenFields(ctx, r.pool, f); err != nil {
		return eventstore.MarkUnavailable(err)
	}
	return nil
}

// Account implements app.Reader.
func (r *OpeningReader) Account(ctx context.Context, vpa string) (app.Account, bool, eventstore.Position, error) {
	a, found, cp, err := r.Reader.Account(ctx, vpa)
	if err != nil || !found {
		return a, found, cp, err
	}
	if a.Status == contract.AccountStatusClosed {
		a.HolderName = contract.ErasedValue
		return a, found, cp, nil
	}
	return a, found, cp, r.open(ctx, pii.Fields{Strings: []*string{&a.HolderName}})
}

// VPA implements app.Reader.
func (r *OpeningReader) VPA(ctx context.Context, vpa string) (contract.VPALookup, bool, eventstore.Position, error) {
	v, found, cp, err := r.Reader.VPA(ctx, vpa)
	if err != nil || !found {
		return v, found, cp, err
	}
	return v, found, cp, r.open(ctx, pii.Fields{Strings: []*string{&v.Name}})
}

// Payment implements app.Reader.
func (r *OpeningReader) Payment(ctx context.Context, id uuid.UUID) (app.Payment, bool, eventstore.Position, error) {
	p, found, cp, err := r.Reader.Payment(ctx, id)
	if err != nil || !found {
		return p, found, cp, err
	}
	return p, found, cp, r.open(ctx, pii.Fields{Strings: []*string{&p.Note}})
}

// PaymentByRRN implements app.Reader.
func (r *OpeningReader) PaymentByRRN(ctx context.Context, rrn string) (app.Payment, bool, eventstore.Position, error) {
	p, found, cp, err := r.Reader.PaymentByRRN(ctx, rrn)
	if err != nil || !found {
		return p, found, cp, err
	}
	return p, found, cp, r.open(ctx, pii.Fields{Strings: []*string{&p.Note}})
}

// PaymentEvents implements app.Reader: the payment, and its audit trail's event data opened.
func (r *OpeningReader) PaymentEvents(ctx context.Context, id uuid.UUID) (app.Payment, bool, []contract.PaymentEvent, eventstore.Position, error) {
	p, found, items, cp, err := r.Reader.PaymentEvents(ctx, id)
	if err != nil || !found {
		return p, found, items, cp, err
	}
	f := pii.Fields{Strings: []*string{&p.Note}, JSON: make([]*json.RawMessage, len(items))}
	for i := range items {
		f.JSON[i] = &items[i].Data
	}
	return p, found, items, cp, r.open(ctx, f)
}

// Refund implements app.Reader.
func (r *OpeningReader) Refund(ctx context.Context, id uuid.UUID) (app.Refund, bool, eventstore.Position, error) {
	f, found, cp, err := r.Reader.Refund(ctx, id)
	if err != nil || !found {
		return f, found, cp, err
	}
	return f, found, cp, r.open(ctx, pii.Fields{Strings: []*string{&f.Reason}})
}

// Collect implements app.Reader.
func (r *OpeningReader) Collect(ctx context.Context, id uuid.UUID) (app.Collect, bool, eventstore.Position, error) {
	c, found, cp, err := r.Reader.Collect(ctx, id)
	if err != nil || !found {
		return c, found, cp, err
	}
	return c, found, cp, r.open(ctx, pii.Fields{Strings: []*string{&c.Note}})
}

// Collects implements app.Reader.
func (r *OpeningReader) Collects(ctx context.Context, payer, status string, beforeSeq, limit int) (string, bool, []app.SeqCollect, eventstore.Position, error) {
	owner, found, items, cp, err := r.Reader.Collects(ctx, payer, status, beforeSeq, limit)
	if err != nil || !found || len(items) == 0 {
		return owner, found, items, cp, err
	}
	f := pii.Fields{Strings: make([]*string, len(items))}
	for i := range items {
		f.Strings[i] = &items[i].Note
	}
	return owner, found, items, cp, r.open(ctx, f)
}
