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

// DepositPath is the path of a deposit into an account, with the VPA in its normalised form, so that a
// retry spelling the VPA in another case is still the same command.
func DepositPath(vpa string) string { return PathAccounts + "/" + vpa + "/deposits" }

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
	meta := clientMetadata(c, c.RequestID, fp)
	op := eventstore.NewOp(AccountAggregate(), cmd.VPA.String(),
		func(a domain.Account, _ int, _ eventstore.Reads) ([]eventstore.NewEvent, error) {
			opened, err := a.Open(domain.OpenAccount{VPA: cmd.VPA, HolderName: cmd.HolderName, Client: c.ClientID,
				Type: cmd.Type, MCC: cmd.MCC})
			if err != nil {
				return nil, err
			}
			return newEvent(id, opened, meta), nil
		})
	op.Dedupe = id
	res, err := s.commit.Execute(ctx, op)
	if err != nil {
		return contract.Account{}, false, failure("open account "+cmd.VPA.String(), err)
	}
	e, err := original(res, id, events.AccountOpened, fp)
	if err != nil {
		return contract.Account{}, false, err
	}
	opened, err := decode[events.AccountOpenedV1](e)
	if err != nil {
		return contract.Account{}, false, err
	}
	return contract.Account{
		VPA:          opened.VPA,
		HolderName:   opened.HolderName,
		Type:         opened.Kind(),
		MCC:          opened.MCC,
		Status:       contract.AccountStatusActive,
		BalancePaise: 0,
		Currency:     money.Currency,
		CreatedAt:    contract.Time(e.CreatedAt),
		UpdatedAt:    contract.Time(e.CreatedAt),
		Position:     e.Position.Token(),
	}, res.Replayed, nil
}

// Deposit credits an account its owner names. To anyone else the account does not exist.
func (s *Service) Deposit(ctx context.Context, c Caller, cmd contract.DepositCommand) (contract.Deposit, bool, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	id := effectID(c, DepositPath(cmd.VPA.String()))
	fp := fingerprint(struct {
		Command     string `json:"command"`
		VPA         string `json:"vpa"`
		AmountPaise int64  `json:"amount_paise"`
		Reference   string `json:"reference"`
	}{"deposit", cmd.VPA.String(), int64(cmd.Amount.Paise()), cmd.Reference})
	meta := clientMetadata(c, c.RequestID, fp)
	op := eventstore.NewOp(AccountAggregate(), cmd.VPA.String(),
		func(a domain.Account, _ int, _ eventstore.Reads) ([]eventstore.NewEvent, error) {
			deposited, err := a.Deposit(c.ClientID, cmd.Amount, cmd.Reference)
			if err != nil {
				return nil, err
			}
			return newEvent(id, deposited, meta), nil
		})
	op.Dedupe = id
	res, err := s.commit.Execute(ctx, op)
	if err != nil {
		return contract.Deposit{}, false, failure("deposit into "+cmd.VPA.String(), err)
	}
	e, err := original(res, id, events.FundsDeposited, fp)
	if err != nil {
		return contract.Deposit{}, false, err
	}
	deposited, err := decode[events.FundsDepositedV1](e)
	if err != nil {
		return contract.Deposit{}, false, err
	}
	return contract.Deposit{
		VPA:         deposited.VPA,
		AmountPaise: deposited.AmountPaise,
		Reference:   deposited.Reference,
		Position:    e.Position.Token(),
		CreatedAt:   contract.Time(e.CreatedAt),
	}, res.Replayed, nil
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
	meta := clientMetadata(c, id.String(), fp)
	op := eventstore.NewOp(PaymentAggregate(), id.String(),
		func(p domain.Payment, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
			owner, err := ownerOf(r, payer)
			if err != nil {
				return nil, err
			}
			if owner != c.ClientID {
				return nil, fmt.Errorf("payer %s: %w", payer, domain.ErrAccountNotFound)
			}
			opening, found := r.Origin(payee)
			if !found {
				return nil, fmt.Errorf("payee %s: %w", payee, ErrPayeeNotFound)
			}
			payeeOpened, err := decode[events.AccountOpenedV1](opening)
			if err != nil {
				return nil, err
			}
			initiated, err := p.Initiate(domain.InitiatePayment{ID: id.String(), Payer: cmd.Payer, Payee: cmd.Payee,
				Amount: cmd.Amount, Note: cmd.Note, Client: c.ClientID, UPITxnID: ids.UPITxnID(id),
				PayeeType: payeeOpened.Kind()})
			if err != nil {
				return nil, err
			}
			return newEvent(id, initiated, meta), nil
		})
	op.Dedupe = id
	op.Origins = []string{payer, payee}
	res, err := s.commit.Execute(ctx, op)
	if err != nil {
		return contract.Payment{}, false, failure("initiate payment "+id.String(), err)
	}
	return paymentAnswer(res, id, fp)
}

func paymentAnswer(res eventstore.Result, id uuid.UUID, fp string) (contract.Payment, bool, error) {
	e, err := original(res, id, events.PaymentInitiated, fp)
	if err != nil {
		return contract.Payment{}, false, err
	}
	p, err := decode[events.PaymentInitiatedV1](e)
	if err != nil {
		return contract.Payment{}, false, err
	}
	return contract.Payment{
		PaymentID:   p.PaymentID,
		UPITxnID:    upiTxnID(p, id),
		PayerVPA:    p.PayerVPA,
		PayeeVPA:    p.PayeeVPA,
		AmountPaise: p.AmountPaise,
		Currency:    money.Currency,
		Note:        p.Note,
		Status:      contract.PaymentPending,
		CreatedAt:   contract.Time(e.CreatedAt),
		UpdatedAt:   contract.Time(e.CreatedAt),
		Position:    e.Position.Token(),
	}, res.Replayed, nil
}

// upiTxnID is the payment's UPI transaction id as its initiation recorded it, or derived from its id for
// a payment initiated before the field existed (the same value).
func upiTxnID(p events.PaymentInitiatedV1, id uuid.UUID) string {
	if p.UPITxnID != "" {
		return p.UPITxnID
	}
	return ids.UPITxnID(id)
}

// ownerOf is the client that opened account vpa, from the stream's first event ("" if it was never
// opened).
func ownerOf(r eventstore.Reads, vpa string) (string, error) {
	e, found := r.Origin(vpa)
	if !found {
		return "", nil
	}
	opened, err := decode[events.AccountOpenedV1](e)
	return opened.OwnerClientID, err
}

func effectID(c Caller, path string) uuid.UUID {
	return ids.ClientCommand(c.ClientID, http.MethodPost, path, c.IdempotencyKey)
}

func clientMetadata(c Caller, correlation, fp string) events.Metadata {
	return events.Metadata{SchemaVersion: events.SchemaVersion, CorrelationID: correlation,
		RequestID: c.RequestID, ClientID: c.ClientID, Fingerprint: fp, TraceParent: c.TraceParent}
}
