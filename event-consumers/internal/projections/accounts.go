// Package projections builds the read models the query service serves, one projection per set of
// tables (db/migrations/00003_projections.sql). Each applies a batch as one pipelined round trip of
// statements inside the runner's transaction, and checks every event against the row it changes: the
// stream version must be the next one, and the balance it computes must equal the balance the event
// recorded. A mismatch is an error, never silently applied.
package projections

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"upi/shared/contract"
	"upi/shared/events"
	"upi/shared/eventstore"
	"upi/shared/projection"
)

// Accounts is the "accounts" projection: accounts and their money movements.
type Accounts struct{}

// Name implements runner.Projection.
func (Accounts) Name() string { return projection.Accounts }

// Tables implements runner.Projection.
func (Accounts) Tables() []string { return []string{"accounts", "account_transactions"} }

// Apply implements runner.Projection.
func (Accounts) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	b := &pgx.Batch{}
	for _, e := range batch {
		if e.AggregateType != events.AggregateAccount {
			continue
		}
		p, err := events.Decode(e.Type, e.Payload)
		if err != nil {
			return applyError(e, err)
		}
		switch p := p.(type) {
		case events.AccountOpenedV1:
			if e.Version != 1 {
				return applyError(e, fmt.Errorf("opens a stream at version %d", e.Version))
			}
			b.Queue(`insert into accounts (vpa, owner_client_id, holder_name, balance_paise, version,
					created_at, updated_at, tx_id, global_position)
				values ($1, $2, $3, 0, 1, $4, $4, $5::text::xid8, $6)`,
				e.AggregateID, p.OwnerClientID, p.HolderName, e.CreatedAt, txID(e), e.Position.GlobalPosition)
		case events.FundsDepositedV1:
			move(b, e, p.AmountPaise, p.BalanceAfterPaise)
			movement(b, e, contract.KindDeposit, p.AmountPaise, p.BalanceAfterPaise, nil, nil, &p.Reference)
		case events.AccountDebitedV1:
			move(b, e, -p.AmountPaise, p.BalanceAfterPaise)
			movement(b, e, contract.KindDebit, p.AmountPaise, p.BalanceAfterPaise, &p.PaymentID, &p.CounterpartyVPA, nil)
		case events.DebitRejectedV1:
			move(b, e, 0, p.BalancePaise) // no money moved; only the version
		case events.AccountCreditedV1:
			move(b, e, p.AmountPaise, p.BalanceAfterPaise)
			movement(b, e, contract.KindCredit, p.AmountPaise, p.BalanceAfterPaise, &p.PaymentID, &p.CounterpartyVPA, nil)
		case events.DebitReversedV1:
			move(b, e, p.AmountPaise, p.BalanceAfterPaise)
			movement(b, e, contract.KindReversal, p.AmountPaise, p.BalanceAfterPaise, &p.PaymentID, &p.CounterpartyVPA, nil)
		default:
			return applyError(e, fmt.Errorf("%s is not an account event", e.Type))
		}
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("apply accounts batch: %w", err)
	}
	return nil
}

// move changes an account's balance by delta if the account is at the version before e, and checks the
// result against the balance e recorded.
func move(b *pgx.Batch, e eventstore.Event, delta, balanceAfter int64) {
	b.Queue(`update accounts
		set balance_paise = balance_paise + $2, version = $3, updated_at = $4,
		    tx_id = $5::text::xid8, global_position = $6
		where vpa = $1 and version = $3 - 1
		returning balance_paise`,
		e.AggregateID, delta, e.Version, e.CreatedAt, txID(e), e.Position.GlobalPosition,
	).QueryRow(func(row pgx.Row) error {
		var balance int64
		err := row.Scan(&balance)
		if errors.Is(err, pgx.ErrNoRows) {
			return applyError(e, errors.New("ordering violation: the account is missing or not at the previous version"))
		}
		if err != nil {
			return applyError(e, err)
		}
		if balance != balanceAfter {
			return applyError(e, fmt.Errorf("balance after is %d in the read model, %d in the event", balance, balanceAfter))
		}
		return nil
	})
}

func movement(b *pgx.Batch, e eventstore.Event, kind string, amount, balanceAfter int64, paymentID, counterparty, reference *string) {
	b.Queue(`insert into account_transactions (vpa, version, kind, amount_paise, balance_after_paise,
			payment_id, counterparty_vpa, reference, at, tx_id, global_position)
		values ($1, $2, $3, $4, $5, $6::uuid, $7, $8, $9, $10::text::xid8, $11)`,
		e.AggregateID, e.Version, kind, amount, balanceAfter, paymentID, counterparty, reference, e.CreatedAt,
		txID(e), e.Position.GlobalPosition)
}

func txID(e eventstore.Event) string { return strconv.FormatUint(e.Position.TxID, 10) }

// applyError names the event a projection could not apply.
func applyError(e eventstore.Event, err error) error {
	return fmt.Errorf("event %s (%s %s v%d at %s): %w", e.ID, e.Type, e.AggregateID, e.Version, e.Position.Token(), err)
}
