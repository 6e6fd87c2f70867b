package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"upi/command-service/internal/domain"
	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/ids"
	"upi/shared/platform/eventstore"
)

// ErrDepositReferenceConflict: the account already has a deposit with the reference, of another amount.
var ErrDepositReferenceConflict = errors.New("the account already has a deposit with this reference, of another amount")

// DepositPath is the path of a deposit into an account, with the VPA in its normalised form, so that a
// retry spelling the VPA in another case is still the same command.
func DepositPath(vpa string) string { return PathAccounts + "/" + vpa + "/deposits" }

// WithdrawalPath is the path of a withdrawal from an account, normalised like DepositPath.
func WithdrawalPath(vpa string) string { return PathAccounts + "/" + vpa + "/withdrawals" }

// settlementOf is the settlement stream of account vpa's bank that its movements use, and the bank.
func (s *Service) settlementOf(vpa string) (stream, bank string) {
	bank = events.BankOf(vpa)
	return events.SettlementStream(bank, events.SettlementShard(vpa, s.money.SettlementShards)), bank
}

// Deposit credits an account its owner names, with money from its bank: the account's FundsDeposited
// and its bank's SettlementDebited commit together or not at all. The deposit's id comes from the account
// and the reference, so a reference is taken once per account: the same reference and amount again (any
// idempotency key) answers the first deposit, replayed; another amount is ErrDepositReferenceConflict. To
// anyone but the owner the account does not exist.
func (s *Service) Deposit(ctx context.Context, c Caller, cmd contract.DepositCommand) (contract.Deposit, bool, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	vpa := cmd.VPA.String()
	id := ids.Deposit(vpa, cmd.Reference)
	fp := fingerprint(struct {
		Command     string `json:"command"`
		VPA         string `json:"vpa"`
		AmountPaise int64  `json:"amount_paise"`
		Reference   string `json:"reference"`
	}{"deposit", vpa, int64(cmd.Amount.Paise()), cmd.Reference})
	meta := clientMetadata(c, c.RequestID, fp)
	stream, bank := s.settlementOf(vpa)
	op := clientOp(AccountAggregate(), vpa, id, meta, func(a domain.Account, r eventstore.Reads) (events.Payload, error) {
		return a.Deposit(c.ClientID, cmd.Amount, cmd.Reference, domain.DepositTerms{At: r.Now(),
			DailyCap: s.money.DepositDailyCap, Settlement: stream})
	})
	op.With = []*eventstore.Op{clientOp(SettlementAggregate(), stream, ids.SettlementLeg(id), meta,
		func(st domain.Settlement, _ eventstore.Reads) (events.Payload, error) {
			return st.Fund(domain.Move{Bank: bank, VPA: vpa, Leg: id.String(), Amount: cmd.Amount.Paise()})
		})}
	res, err := s.commit.Execute(ctx, op)
	if err != nil {
		return contract.Deposit{}, false, fmt.Errorf("deposit into %s: %w", vpa, err)
	}
	e := res.Find(id)
	if e == nil {
		return contract.Deposit{}, false, fmt.Errorf("deposit %s: the store returned no event with its id", id)
	}
	deposited, err := decode[events.FundsDepositedV1](*e)
	if err != nil {
		return contract.Deposit{}, false, err
	}
	if res.Replayed {
		if owner, err := clientOf(*e); err != nil || owner != c.ClientID {
			return contract.Deposit{}, false, fmt.Errorf("deposit into %s: %w", vpa, domain.ErrAccountNotFound)
		}
		if deposited.AmountPaise != int64(cmd.Amount.Paise()) {
			return contract.Deposit{}, false, fmt.Errorf("deposit %q into %s: %w", cmd.Reference, vpa, ErrDepositReferenceConflict)
		}
	}
	return contract.Deposit{
		VPA:         deposited.VPA,
		AmountPaise: deposited.AmountPaise,
		Reference:   deposited.Reference,
		Position:    e.Position.Token(),
		CreatedAt:   contract.Time(e.CreatedAt),
	}, res.Replayed, nil
}

// Withdraw sends money from an account to its bank, decided at once: the account's FundsWithdrawn and its
// bank's SettlementCredited commit together; a balance that does not cover it records WithdrawalRejected
// (FAILED, INSUFFICIENT_FUNDS) and moves nothing. The withdrawal's id comes from the caller's idempotency
// key, and only the owner may withdraw.
func (s *Service) Withdraw(ctx context.Context, c Caller, cmd contract.WithdrawCommand) (contract.Withdrawal, bool, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	vpa := cmd.VPA.String()
	id := effectID(c, WithdrawalPath(vpa))
	fp := fingerprint(struct {
		Command     string `json:"command"`
		VPA         string `json:"vpa"`
		AmountPaise int64  `json:"amount_paise"`
		Reference   string `json:"reference"`
	}{"withdraw", vpa, int64(cmd.Amount.Paise()), cmd.Reference})
	meta := clientMetadata(c, id.String(), fp)
	rrns, err := s.rrns.Lease(ctx, 1)
	if err != nil {
		return contract.Withdrawal{}, false, fmt.Errorf("withdraw from %s: %w", vpa, err)
	}
	defer rrns.Release()
	stream, bank := s.settlementOf(vpa)
	op := clientOp(AccountAggregate(), vpa, id, meta, func(a domain.Account, _ eventstore.Reads) (events.Payload, error) {
		return a.Withdraw(domain.Withdrawal{ID: id.String(), Client: c.ClientID, Amount: cmd.Amount,
			Reference: cmd.Reference, Settlement: stream, RRN: rrns.Take})
	})
	// The bank's side, only when the account's side moved money.
	op.With = []*eventstore.Op{eventstore.NewOp(SettlementAggregate(), stream,
		func(st domain.Settlement, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
			if e, ok := r.Event(id); !ok || e.Type != events.FundsWithdrawn {
				return nil, nil
			}
			p, err := st.Receive(domain.Move{Bank: bank, VPA: vpa, Leg: id.String(), Amount: cmd.Amount.Paise()})
			if err != nil {
				return nil, err
			}
			return newEvent(ids.SettlementLeg(id), p, meta), nil
		})}
	res, err := s.commit.Execute(ctx, op)
	if err != nil {
		return contract.Withdrawal{}, false, fmt.Errorf("withdraw from %s: %w", vpa, err)
	}
	e := res.Find(id)
	if e == nil {
		return contract.Withdrawal{}, false, fmt.Errorf("withdrawal %s: the store returned no event with its id", id)
	}
	if res.Replayed {
		var stored events.Metadata
		if err := json.Unmarshal(e.Metadata, &stored); err != nil {
			return contract.Withdrawal{}, false, fmt.Errorf("metadata of event %s: %w", e.ID, err)
		}
		if stored.Fingerprint != fp {
			return contract.Withdrawal{}, false, ErrIdempotencyKeyReused
		}
	}
	w, err := WithdrawalOf(*e)
	return w, res.Replayed, err
}

// WithdrawalOf is the withdrawal resource as the account's event that decided it shows it.
func WithdrawalOf(e eventstore.Event) (contract.Withdrawal, error) {
	p, err := eventstore.PayloadOf(e, events.Decode)
	if err != nil {
		return contract.Withdrawal{}, fmt.Errorf("event %s: %w", e.ID, err)
	}
	w := contract.Withdrawal{CreatedAt: contract.Time(e.CreatedAt), UpdatedAt: contract.Time(e.CreatedAt),
		Position: e.Position.Token()}
	switch p := p.(type) {
	case events.FundsWithdrawnV1:
		w.WithdrawalID, w.VPA, w.AmountPaise, w.Reference = p.WithdrawalID, p.VPA, p.AmountPaise, p.Reference
		w.Status, w.RRN = contract.PaymentCompleted, p.RRN
	case events.WithdrawalRejectedV1:
		w.WithdrawalID, w.VPA, w.AmountPaise, w.Reference = p.WithdrawalID, p.VPA, p.AmountPaise, p.Reference
		code, npci := p.Code, events.NPCICode(p.Code)
		w.Status, w.FailureCode, w.NPCICode = contract.PaymentFailed, &code, &npci
	default:
		return contract.Withdrawal{}, fmt.Errorf("event %s is a %s, not a withdrawal", e.ID, e.Type)
	}
	return w, nil
}

// clientOf is the client whose command appended e.
func clientOf(e eventstore.Event) (string, error) {
	var meta events.Metadata
	if err := json.Unmarshal(e.Metadata, &meta); err != nil {
		return "", fmt.Errorf("metadata of event %s: %w", e.ID, err)
	}
	return meta.ClientID, nil
}
