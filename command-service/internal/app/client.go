package app

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/uuid"

	"upi/command-service/internal/domain"
	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/ids"
	"upi/shared/contract/money"
	"upi/shared/platform/eventstore"
)

// Paths of the client commands: with the client and the key, they scope the ids of their effects.
const (
	PathAccounts = "/v1/accounts"
	PathPayments = "/v1/payments"
)

// OpenAccount opens an account on its VPA's stream. The AccountOpened's event id is derived from the
// caller's idempotency key; a repeat of the same request answers the stored account (replayed = true).
func (s *Service) OpenAccount(ctx context.Context, c Caller, cmd contract.OpenAccount) (contract.Account, bool, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	id := effectID(c, PathAccounts)
	// A PERSON's fingerprint is what it was before kinds existed, so that a retry of an older request is
	// still the same request.
	kind := cmd.Type
	if kind == contract.AccountPerson {
		kind = ""
	}
	fp := fingerprint(struct {
		Command    string `json:"command"`
		VPA        string `json:"vpa"`
		HolderName string `json:"holder_name"`
		Type       string `json:"type,omitempty"`
		MCC        string `json:"mcc,omitempty"`
	}{"open_account", cmd.VPA.String(), cmd.HolderName, kind, cmd.MCC})
	// The holder's name is sealed with the holder's key (made now), so that erasing the account erases it.
	holder, err := s.seal(ctx, cmd.HolderName, cmd.VPA.String())
	if err != nil {
		return contract.Account{}, false, err
	}
	op := clientOp(AccountAggregate(), cmd.VPA.String(), id, clientMetadata(c, c.RequestID, fp),
		func(a domain.Account, _ eventstore.Reads) (events.Payload, error) {
			return a.Open(domain.OpenAccount{VPA: cmd.VPA, HolderName: holder, Client: c.ClientID,
				Type: cmd.Type, MCC: cmd.MCC})
		})
	out, err := commitClientCommand[events.AccountOpenedV1](ctx, s, op, fp, "open account "+cmd.VPA.String())
	if err != nil {
		return contract.Account{}, false, err
	}
	opened, e := out.payload, out.event
	return contract.Account{
		VPA:          opened.VPA,
		HolderName:   cmd.HolderName, // the same request's (a replay's fingerprint matched); the event's is sealed
		Type:         opened.Kind(),
		MCC:          opened.MCC,
		Status:       contract.AccountStatusActive,
		BalancePaise: 0,
		Currency:     money.Currency,
		CreatedAt:    contract.Time(e.CreatedAt),
		UpdatedAt:    contract.Time(e.CreatedAt),
		Position:     e.Position.Token(),
	}, out.replayed, nil
}

// InitiatePayment records a payment, PENDING; the workflow moves the money. The payment id is derived
// from the caller's idempotency key, and is also the PaymentInitiated's event id.
func (s *Service) InitiatePayment(ctx context.Context, c Caller, cmd contract.InitiatePayment) (contract.Payment, bool, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	id := effectID(c, PathPayments)
	fp := fingerprint(struct {
		Command     string `json:"command"`
		PayerVPA    string `json:"payer_vpa"`
		PayeeVPA    string `json:"payee_vpa"`
		AmountPaise int64  `json:"amount_paise"`
		Note        string `json:"note"`
	}{"initiate_payment", cmd.Payer.String(), cmd.Payee.String(), int64(cmd.Amount.Paise()), cmd.Note})

	// One round trip reads the key's earlier outcome, if any, and the openings of both accounts. A key
	// already used is answered before the accounts are looked at: its request is not executed again, so
	// whether the accounts would pass today does not matter. Accounts are never closed, so an opening
	// found still holds when the payment commits.
	payer, payee := cmd.Payer.String(), cmd.Payee.String()
	// A note names both people: it is sealed for both, so erasing either erases it. No note, no crypto.
	note, err := s.seal(ctx, cmd.Note, payer, payee)
	if err != nil {
		return contract.Payment{}, false, err
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
			if err != nil {
				return nil, err
			}
			return p.Initiate(domain.InitiatePayment{ID: id.String(), Payer: cmd.Payer, Payee: cmd.Payee,
				Amount: cmd.Amount, Note: note, Client: c.ClientID, UPITxnID: ids.UPITxnID(id),
				PayeeType: payeeType})
		})
	op.Origins = []string{payer, payee}
	out, err := commitClientCommand[events.PaymentInitiatedV1](ctx, s, op, fp, "initiate payment "+id.String())
	if err != nil {
		return contract.Payment{}, false, err
	}
	p, e := out.payload, out.event
	return contract.Payment{
		PaymentID:   p.PaymentID,
		UPITxnID:    upiTxnID(p, id),
		PayerVPA:    p.PayerVPA,
		PayeeVPA:    p.PayeeVPA,
		AmountPaise: p.AmountPaise,
		Currency:    money.Currency,
		Note:        cmd.Note, // the request's (a replay's fingerprint matched); the event's is sealed
		Status:      contract.PaymentPending,
		CreatedAt:   contract.Time(e.CreatedAt),
		UpdatedAt:   contract.Time(e.CreatedAt),
		Position:    e.Position.Token(),
	}, out.replayed, nil
}

// upiTxnID is the payment's UPI transaction id as its initiation recorded it, or derived from its id for
// a payment initiated before the field existed (the same value).
func upiTxnID(p events.PaymentInitiatedV1, id uuid.UUID) string {
	if p.UPITxnID != "" {
		return p.UPITxnID
	}
	return ids.UPITxnID(id)
}

// accountOpening is the AccountOpened of account vpa, from the stream origins r read; found is false if
// the account was never opened.
func accountOpening(r eventstore.Reads, vpa string) (opened events.AccountOpenedV1, found bool, err error) {
	e, found := r.Origin(vpa)
	if !found {
		return events.AccountOpenedV1{}, false, nil
	}
	opened, err = decode[events.AccountOpenedV1](e)
	return opened, true, err
}

// ownerOf is the client that opened account vpa, from the stream's first event ("" if it was never
// opened).
func ownerOf(r eventstore.Reads, vpa string) (string, error) {
	opened, _, err := accountOpening(r, vpa)
	return opened.OwnerClientID, err
}

// payeeKind is the kind of a payment's payee account (ErrPayeeNotFound if it was never opened).
func payeeKind(r eventstore.Reads, payee string) (string, error) {
	opened, found, err := accountOpening(r, payee)
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("payee %s: %w", payee, ErrPayeeNotFound)
	}
	return opened.Kind(), nil
}

func effectID(c Caller, path string) uuid.UUID {
	return ids.ClientCommand(c.ClientID, http.MethodPost, path, c.IdempotencyKey)
}

// clientMetadata is the metadata of a client command's event: the caller's, and the command's
// fingerprint, by which a repeat of its idempotency key is told apart from a different request.
func clientMetadata(c Caller, correlation, fp string) events.Metadata {
	meta := callerMetadata(c, correlation)
	meta.Fingerprint = fp
	return meta
}

// clientOp is the op of a client command: the one event decide yields, with the command's id and
// metadata.
func clientOp[S any](agg eventstore.Aggregate[S], stream string, id uuid.UUID, meta events.Metadata,
	decide func(state S, r eventstore.Reads) (events.Payload, error)) *eventstore.Op {
	return eventOp(agg, stream, id, func(state S, r eventstore.Reads) (events.Payload, events.Metadata, error) {
		p, err := decide(state, r)
		return p, meta, err
	})
}

// answer is the event that answers a client command, its payload, and whether the command was a repeat.
type answer[P events.Payload] struct {
	payload  P
	event    eventstore.Event
	replayed bool
}

// commitClientCommand runs a client command's op through the committer, so that concurrent commands
// share a transaction, and returns its answer: the event with the op's dedupe id, the command's id (see
// original). what names the command in the error of a failed store.
func commitClientCommand[P events.Payload](ctx context.Context, s *Service, op *eventstore.Op, fp, what string) (answer[P], error) {
	res, err := s.commit.Execute(ctx, op)
	if err != nil {
		return answer[P]{}, fmt.Errorf("%s: %w", what, err)
	}
	var zero P
	e, err := original(res, op.Dedupe, zero.EventType(), fp)
	if err != nil {
		return answer[P]{}, err
	}
	p, err := decode[P](e)
	if err != nil {
		return answer[P]{}, err
	}
	return answer[P]{payload: p, event: e, replayed: res.Replayed}, nil
}
