package app

import (
	"context"
	"errors"
	"fmt"

	"upi/command-service/internal/domain"
	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/ids"
	"upi/shared/contract/vpa"
	"upi/shared/platform/eventstore"
	"upi/shared/platform/pii"
)

// ErrSubjectErased: personal data about an erased account cannot be sealed (its key is gone for good);
// the command naming it is refused as ACCOUNT_CLOSED.
var ErrSubjectErased = errors.New("an account the command names was erased")

// errStreamMoved: the account's stream changed between the erasure's in-flight check and its decision;
// the erasure checks again.
var errStreamMoved = errors.New("the account's stream moved during the erasure's check")

// erasureAttempts bounds how often an erasure checks again because the account kept moving.
const erasureAttempts = 5

// seal seals value (a holder name, a note, a reason) for subjects, their keys made on first use and cached.
// An empty value costs nothing: a payment without a note touches neither the key table nor a cipher.
func (s *Service) seal(ctx context.Context, value string, subjects ...string) (string, error) {
	if value == "" {
		return "", nil
	}
	keys, err := s.keys.Ensure(ctx, subjects...)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	ks := make([]pii.Key, len(subjects))
	for i, sub := range subjects {
		k, ok := keys[sub]
		if !ok {
			return "", fmt.Errorf("%s: %w", sub, ErrSubjectErased)
		}
		ks[i] = pii.Key{Subject: sub, Bytes: k}
	}
	return pii.Seal(value, ks...)
}

// open opens sealed values for an answer (a collect request's note when it is approved or declined); a
// value whose key was destroyed reads "[erased]".
func (s *Service) open(ctx context.Context, values ...*string) error {
	if err := pii.OpenFields(ctx, s.store.Pool(), pii.Fields{Strings: values}); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// EraseAccount erases account v for operator: it appends AccountErased (the account closed for good) and
// destroys the holder's key, after which every sealed field naming the holder reads "[erased]" everywhere.
//
// Only an account with a zero balance and no debit in flight may be erased. The check of what is in flight
// reads the log outside the account's lock, noting the stream's version; the decision, under the lock,
// refuses to go on if the stream moved since, and checks again. So the erasure is decided on exactly the
// state it checked: any later debit or credit of the account finds it closed (a debit is rejected
// ACCOUNT_CLOSED, a credit refused and the payer's debit reversed), and money never comes back to it.
//
// The event id is ids.Erasure of the VPA: erasing twice, under any key, answers the first erasure, and
// destroys the key again if a crash came between the event and the key's destruction.
func (s *Service) EraseAccount(ctx context.Context, c Caller, operator string, v vpa.VPA) (contract.Erasure, bool, error) {
	ctx, cancel := commandContext(ctx)
	defer cancel()
	account := v.String()
	id := ids.Erasure(account)
	meta := callerMetadata(c, id.String())
	for attempt := 0; ; attempt++ {
		version, inFlight, err := s.accountInFlight(ctx, account)
		if err != nil {
			return contract.Erasure{}, false, err
		}
		op := eventstore.NewOp(AccountAggregate(), account,
			func(a domain.Account, at int, _ eventstore.Reads) ([]eventstore.NewEvent, error) {
				if at != version {
					return nil, errStreamMoved
				}
				p, err := a.Erase(operator, inFlight)
				if err != nil {
					return nil, err
				}
				return newEvent(id, p, meta), nil
			})
		op.Dedupe = id
		res, err := s.commit.Execute(ctx, op)
		if errors.Is(err, errStreamMoved) && attempt+1 < erasureAttempts {
			continue
		}
		if err != nil {
			return contract.Erasure{}, false, fmt.Errorf("erase account %s: %w", account, err)
		}
		e := res.Find(id)
		if e == nil {
			return contract.Erasure{}, false, fmt.Errorf("erase account %s: the store returned no event with its id", account)
		}
		// The event is committed: from now on the account is closed. The key goes now; if this fails, the
		// answer is a 503 and the retry (which replays the event) destroys it.
		if err := s.keys.Erase(ctx, account); err != nil {
			return contract.Erasure{}, false, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return contract.Erasure{VPA: account, Status: contract.AccountStatusClosed,
			ErasedAt: contract.Time(e.CreatedAt), Position: e.Position.Token()}, res.Replayed, nil
	}
}

// accountInFlight reads, in one statement (one snapshot), the version of account's stream and whether a
// debit of it (a payment's, or a refund's from a merchant) has not ended: a payment or refund whose debit
// could still be reversed back to it. It follows the account's own stream and the streams its debits name,
// by their ids: an indexed lookup per debit, not a scan of the log.
func (s *Service) accountInFlight(ctx context.Context, account string) (version int, inFlight bool, err error) {
	var v *int
	err = s.store.Pool().QueryRow(ctx, `
		select (select max(version) from events where aggregate_id = $1),
		       exists (select 1 from events d
		               where d.aggregate_id = $1 and d.event_type = $2
		                 and not exists (select 1 from events c where c.aggregate_id = d.payload->>'payment_id'
		                                 and c.event_type = any($3)))
		    or exists (select 1 from events d
		               where d.aggregate_id = $1 and d.event_type = $4
		                 and not exists (select 1 from events c where c.aggregate_id = d.payload->>'refund_id'
		                                 and c.event_type = any($5)))`,
		account, events.AccountDebited, []string{events.PaymentCompleted, events.PaymentFailed},
		events.RefundDebited, []string{events.RefundCompleted, events.RefundFailed}).Scan(&v, &inFlight)
	if err != nil {
		return 0, false, fmt.Errorf("%w: check what account %s has in flight: %w", ErrUnavailable, account, err)
	}
	if v == nil {
		return 0, false, fmt.Errorf("erase account %s: %w", account, domain.ErrAccountNotFound)
	}
	return *v, inFlight, nil
}
