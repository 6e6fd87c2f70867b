package app

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"upi/shared/contract"
	"upi/shared/contract/intent"
	"upi/shared/contract/projection"
	"upi/shared/contract/vpa"
	"upi/shared/platform/eventstore"
)

// Refusals of the merchant reads.
var (
	ErrQRNotFound      = errors.New("qr code not found")
	ErrQRNotAllowed    = errors.New("only an ENTITY account has a QR code")
	ErrMandateNotFound = errors.New("mandate not found")
)

// QRRow is a dynamic QR as the merchant projection holds it, with the owner who may see it.
type QRRow struct {
	contract.QR
	Owner   string
	Expires time.Time
}

// Merchant is an account's face on its static QR: its owner, name, kind and category code.
type Merchant struct {
	Owner, Name, Type, MCC string
}

// MerchantReader reads the merchant projection (QR codes, mandates) and what the merchant reads need of
// the others. The postgres Reader implements it beside Reader.
type MerchantReader interface {
	QR(ctx context.Context, id uuid.UUID) (QRRow, bool, eventstore.Position, error)
	Merchant(ctx context.Context, vpa string) (Merchant, bool, eventstore.Position, error)
	PaymentsByReference(ctx context.Context, ref string) ([]Payment, eventstore.Position, error)
	Mandate(ctx context.Context, id uuid.UUID) (MandateRow, bool, eventstore.Position, error)
	MandateEvents(ctx context.Context, id uuid.UUID) ([]contract.PaymentEvent, error)
}

// MandateRow is a mandate with the owners who may see it: its payer's and its payee's.
type MandateRow struct {
	contract.Mandate
	PayerOwner, PayeeOwner string
}

func (m MandateRow) visibleTo(client string) bool {
	return client != "" && (client == m.PayerOwner || client == m.PayeeOwner)
}

// Mandate returns a mandate, with its debits, visible to the owners of its payer and payee.
func (q *Queries) Mandate(ctx context.Context, client string, id uuid.UUID, c Consistency) (contract.Mandate, Freshness, error) {
	q.await(ctx, projection.Merchant, c)
	m, found, cp, err := q.merchantReader().Mandate(ctx, id)
	f := freshness(cp, c)
	if err != nil {
		return contract.Mandate{}, f, err
	}
	if !found || !m.visibleTo(client) {
		return contract.Mandate{}, f, ErrMandateNotFound
	}
	return m.Mandate, f, nil
}

// MandateEvents is a mandate's audit trail, oldest first, for the owners of its payer and payee.
func (q *Queries) MandateEvents(ctx context.Context, client string, id uuid.UUID, c Consistency) (contract.PaymentEventPage, Freshness, error) {
	q.await(ctx, projection.Merchant, c)
	m, found, cp, err := q.merchantReader().Mandate(ctx, id)
	f := freshness(cp, c)
	if err != nil {
		return contract.PaymentEventPage{}, f, err
	}
	if !found || !m.visibleTo(client) {
		return contract.PaymentEventPage{}, f, ErrMandateNotFound
	}
	items, err := q.merchantReader().MandateEvents(ctx, id)
	if items == nil {
		items = []contract.PaymentEvent{}
	}
	return contract.PaymentEventPage{Items: items}, f, err
}

func (q *Queries) merchantReader() MerchantReader { return q.reader.(MerchantReader) }

// QR returns a dynamic QR of one of client's accounts; one past its expiry and unpaid is EXPIRED.
func (q *Queries) QR(ctx context.Context, client string, id uuid.UUID, c Consistency) (contract.QR, Freshness, error) {
	q.await(ctx, projection.Merchant, c)
	row, found, cp, err := q.merchantReader().QR(ctx, id)
	f := freshness(cp, c)
	if err != nil {
		return contract.QR{}, f, err
	}
	if !found || row.Owner != client {
		return contract.QR{}, f, ErrQRNotFound
	}
	if row.Status == contract.QRActive && !time.Now().Before(row.Expires) {
		row.Status = contract.QRExpired
	}
	return row.QR, f, nil
}

// StaticQR is the static QR of client's merchant account v: its link without amount or reference.
func (q *Queries) StaticQR(ctx context.Context, client, v string, c Consistency) (contract.QR, Freshness, error) {
	q.await(ctx, projection.Accounts, c)
	m, found, cp, err := q.merchantReader().Merchant(ctx, v)
	f := freshness(cp, c)
	if err != nil {
		return contract.QR{}, f, err
	}
	if !found || m.Owner != client {
		return contract.QR{}, f, ErrAccountNotFound
	}
	if m.Type != contract.AccountEntity {
		return contract.QR{}, f, ErrQRNotAllowed
	}
	payee, err := vpa.Parse(v)
	if err != nil {
		return contract.QR{}, f, ErrAccountNotFound
	}
	link := intent.Intent{PayeeVPA: payee, Name: m.Name, MCC: m.MCC}
	return contract.QR{PayeeVPA: v, PayeeName: m.Name, MCC: m.MCC, Intent: link.String(), Status: contract.QRStatic}, f, nil
}

// PaymentsByReference lists the payments made with the merchant reference ref that client may see.
func (q *Queries) PaymentsByReference(ctx context.Context, client, ref string, c Consistency) ([]contract.Payment, Freshness, error) {
	q.await(ctx, projection.Payments, c)
	ps, cp, err := q.merchantReader().PaymentsByReference(ctx, ref)
	f := freshness(cp, c)
	out := []contract.Payment{}
	for _, p := range ps {
		if p.visibleTo(client) {
			out = append(out, p.Payment)
		}
	}
	return out, f, err
}
