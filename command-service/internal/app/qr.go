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
	"upi/shared/contract/intent"
	"upi/shared/contract/money"
	"upi/shared/contract/vpa"
	"upi/shared/platform/eventstore"
)

// ErrIntentPayeeNotFound: a payment's intent names a payee (pa) that does not exist.
var ErrIntentPayeeNotFound = errors.New("the intent's payee does not exist")

// QRAggregate is how the event store rebuilds a dynamic QR; its stream is one or two events long.
func QRAggregate() eventstore.Aggregate[domain.QR] {
	return eventstore.Aggregate[domain.QR]{Type: events.AggregateQR, Evolve: evolvePayload(domain.QR.Evolve)}
}

// qrClose is the event id of a QR's one payment.
func qrClose(qr uuid.UUID) uuid.UUID { return ids.StepEvent(qr, ids.StepClose) }

// CreateQR opens a dynamic QR for one order of the payee, an ENTITY the caller owns. Its stream is keyed
// by the payee and the merchant reference, so a reference names one QR per payee: another request for the
// same reference is refused (domain.ErrQRRefTaken), a repeat of the same request answers the QR.
func (s *Service) CreateQR(ctx context.Context, c Caller, cmd contract.CreateQR) (contract.QR, bool, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	id := effectID(c, contract.PathQRCodes)
	fp := fingerprint(struct {
		Command   string `json:"command"`
		Payee     string `json:"payee_vpa"`
		Ref       string `json:"merchant_reference"`
		Amount    int64  `json:"amount_paise"`
		Min       int64  `json:"min_amount_paise"`
		Note      string `json:"note"`
		ExpiresIn int64  `json:"expires_in_seconds"`
	}{"create_qr", cmd.Payee.String(), cmd.Ref, cmd.AmountPaise, cmd.MinPaise, cmd.Note, int64(cmd.ExpiresIn / time.Second)})
	payee := cmd.Payee.String()
	qrID := ids.QR(payee, cmd.Ref)
	op := clientOp(QRAggregate(), qrID.String(), id, clientMetadata(c, qrID.String(), fp),
		func(q domain.QR, r eventstore.Reads) (events.Payload, error) {
			opened, found, err := accountOpening(r, payee)
			if err != nil {
				return nil, err
			}
			if !found || opened.OwnerClientID != c.ClientID {
				return nil, fmt.Errorf("payee %s: %w", payee, domain.ErrAccountNotFound)
			}
			if opened.Kind() != events.AccountEntity {
				return nil, domain.ErrQRNotAllowed
			}
			return q.Create(events.QRCreatedV1{QRTerms: events.QRTerms{QRID: qrID.String(), PayeeVPA: payee, Ref: cmd.Ref},
				PayeeName: opened.HolderName, MCC: opened.MCC, AmountPaise: cmd.AmountPaise, MinPaise: cmd.MinPaise,
				Note: cmd.Note, ExpiresAt: events.Time(r.Now().Add(cmd.ExpiresIn)), ClientID: c.ClientID})
		})
	op.Origins = []string{payee}
	out, err := commitClientCommand[events.QRCreatedV1](ctx, s, op, fp, "create qr "+qrID.String())
	if err != nil {
		return contract.QR{}, false, err
	}
	// The payee's name is sealed in the event as in the account's (docs/architecture.md, "Personal data and
	// erasure"); the answer shows it opened.
	created := out.payload
	if err := s.open(ctx, &created.PayeeName); err != nil {
		return contract.QR{}, false, err
	}
	return QRAnswer(created, contract.QRActive, nil, out.event.CreatedAt, out.event.Position.Token()), out.replayed, nil
}

// QRAnswer is the QR resource of a dynamic QR as created.
func QRAnswer(q events.QRCreatedV1, status string, paymentID *string, at time.Time, pos string) contract.QR {
	return contract.QR{QRID: q.QRID, PayeeVPA: q.PayeeVPA, PayeeName: q.PayeeName, MCC: q.MCC, MerchantReference: q.Ref,
		AmountPaise: q.AmountPaise, MinAmountPaise: q.MinPaise, Note: q.Note, Intent: QRIntent(q).String(),
		Status: status, PaymentID: paymentID, ExpiresAt: q.ExpiresAt, CreatedAt: contract.Time(at), Position: pos}
}

// QRIntent is the upi://pay link a dynamic QR carries.
func QRIntent(q events.QRCreatedV1) intent.Intent {
	in := intent.Intent{Name: q.PayeeName, MCC: q.MCC, Ref: q.Ref, Note: q.Note, AmountPaise: q.AmountPaise, MinPaise: q.MinPaise}
	in.PayeeVPA, _ = vpa.Parse(q.PayeeVPA)
	return in
}

// payByIntent initiates a payment from an intent link: to its payee (pa), for its amount. A link with a
// merchant reference (tr) pays that payee's dynamic QR, once: the QR's QRPaid and the payment's
// PaymentInitiated are appended together or not at all, under the QR stream's lock, so of concurrent
// payments of one QR exactly one is initiated (the others: domain.ErrQRPaid), and none after its expiry.
func (s *Service) payByIntent(ctx context.Context, c Caller, cmd contract.InitiatePayment) (contract.Payment, bool, error) {
	in := *cmd.Intent
	id := effectID(c, PathPayments)
	fp := fingerprint(struct {
		Command     string `json:"command"`
		PayerVPA    string `json:"payer_vpa"`
		Intent      string `json:"intent"`
		AmountPaise int64  `json:"amount_paise"`
		Note        string `json:"note"`
	}{"initiate_payment_intent", cmd.Payer.String(), in.String(), int64(cmd.Amount.Paise()), cmd.Note})
	payer, payee := cmd.Payer.String(), cmd.Payee.String()
	// The note is sealed for both people, as any payment's (client.go).
	note, err := s.seal(ctx, cmd.Note, payer, payee)
	if err != nil {
		return contract.Payment{}, false, err
	}
	var qrID uuid.UUID
	if in.Ref != "" {
		qrID = ids.QR(payee, in.Ref)
	}
	op := clientOp(PaymentAggregate(), id.String(), id, clientMetadata(c, id.String(), fp),
		func(p domain.Payment, r eventstore.Reads) (events.Payload, error) {
			owner, err := ownerOf(r, payer)
			if err != nil {
				return nil, err
			}
			if owner != c.ClientID {
				return nil, fmt.Errorf("payer %s: %w", payer, domain.ErrAccountNotFound)
			}
			payeeType, err := payeeKind(r, payee)
			if errors.Is(err, ErrPayeeNotFound) {
				return nil, fmt.Errorf("pa %s: %w", payee, ErrIntentPayeeNotFound)
			}
			if err != nil {
				return nil, err
			}
			out, err := p.Initiate(domain.InitiatePayment{ID: id.String(), Payer: cmd.Payer, Payee: cmd.Payee,
				Amount: cmd.Amount, Note: note, Client: c.ClientID, UPITxnID: ids.UPITxnID(id), PayeeType: payeeType})
			if err != nil {
				return nil, err
			}
			out.MerchantReference = in.Ref
			if qrID != uuid.Nil {
				out.QRID = qrID.String()
			}
			return out, nil
		})
	op.Origins = []string{payer, payee}
	if qrID != uuid.Nil {
		claim := eventOp(QRAggregate(), qrID.String(), qrClose(qrID),
			func(q domain.QR, r eventstore.Reads) (events.Payload, events.Metadata, error) {
				meta := callerMetadata(c, id.String())
				meta.CausationID = id.String()
				paid, err := q.Pay(id.String(), int64(cmd.Amount.Paise()), r.Now())
				return paid, meta, err
			})
		// Not deduplicated on its id: a QR paid by another payment is that payment's, and this one is refused.
		claim.Dedupe = uuid.Nil
		op.With = []*eventstore.Op{claim}
	}
	out, err := commitClientCommand[events.PaymentInitiatedV1](ctx, s, op, fp, "initiate payment "+id.String())
	if err != nil {
		return contract.Payment{}, false, err
	}
	answer := paymentAnswer(out.payload, id, out.event)
	answer.Note = cmd.Note // the request's (a replay's fingerprint matched); the event's is sealed
	return answer, out.replayed, nil
}

// paymentAnswer is the PENDING payment its initiation e opened.
func paymentAnswer(p events.PaymentInitiatedV1, id uuid.UUID, e eventstore.Event) contract.Payment {
	return contract.Payment{
		PaymentID:         p.PaymentID,
		UPITxnID:          upiTxnID(p, id),
		PayerVPA:          p.PayerVPA,
		PayeeVPA:          p.PayeeVPA,
		AmountPaise:       p.AmountPaise,
		Currency:          money.Currency,
		Note:              p.Note,
		Status:            contract.PaymentPending,
		MerchantReference: p.MerchantReference,
		MandateID:         p.MandateID,
		CreatedAt:         contract.Time(e.CreatedAt),
		UpdatedAt:         contract.Time(e.CreatedAt),
		Position:          e.Position.Token(),
	}
}
