package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"upi/event-consumers/internal/app/settlement"
	"upi/shared/contract/events"
	"upi/shared/contract/ids"
	"upi/shared/contract/projection"
	"upi/shared/platform/eventstore"
)

// Movement types of the settlement lines (and of the reconciliation files).
const (
	MovementP2P        = "P2P"
	MovementP2M        = "P2M"
	MovementRefund     = "REFUND"
	MovementReversal   = "REVERSAL"
	MovementChargeback = "CHARGEBACK"
	MovementDeposit    = "DEPOSIT"
	MovementWithdrawal = "WITHDRAWAL"
)

// npciApproved is NPCI's response code of an approved transaction, the code of every line but a reversal's.
const npciApproved = "00"

// Settlement is the "settlement" projection: every completed money movement filed under the settlement
// cycle in which its completing event was appended (Schedule), as two lines, the payer's bank's DEBIT and
// the payee's bank's CREDIT, so that the nets of all banks sum to zero in every cycle. Deposits and
// withdrawals have the bank's settlement account on their other side, at the same bank: they show in its
// file and leave its net unchanged (the money moves between the bank and its own customer). A reversal
// gives a payer (or, for a refund, a merchant) back a debit: DEBIT and CREDIT at that account's bank.
//
// A cycle is closed once the projection has seen an append Grace past its end (or, with the log idle, by
// the Closer); a closed cycle gets no more lines, and a movement completed in it after all (a transaction
// that took longer than Grace to commit) is filed under the first open cycle. Both rules depend only on the
// log's order, so a rebuild files every movement where it was.
type Settlement struct {
	Schedule settlement.Schedule
	Grace    time.Duration
}

// Name implements runner.Projection.
func (Settlement) Name() string { return projection.Settlement }

// Tables implements runner.Projection.
func (Settlement) Tables() []string {
	return []string{"settlement_pending", "settlement_cycles", "settlement_lines", "settlement_clock"}
}

// settlementTypes are the events the projection reads.
var settlementTypes = map[string]bool{
	events.PaymentInitiated: true, events.AccountDebited: true, events.PaymentCompleted: true,
	events.PaymentFailed: true, events.DebitReversed: true,
	events.RefundInitiated: true, events.RefundDebited: true, events.RefundCompleted: true,
	events.RefundFailed: true, events.RefundDebitReversed: true,
	events.FundsDeposited: true, events.FundsWithdrawn: true,
}

// Uses implements runner.Selective. The clock moves only with these events, so it is the same whatever
// the batches.
func (Settlement) Uses(e eventstore.Event) bool { return settlementTypes[e.Type] }

// line is one side of a movement.
type line struct {
	movement, side, bank, typ, txn, rrn, payer, payee, npci string
	amount                                                  int64
}

// Apply implements runner.Projection.
func (s Settlement) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	var seen, floor time.Time
	// The clock row is locked for the batch: the Closer closes cycles under the same lock.
	err := tx.QueryRow(ctx, `
		select coalesce((select seen_at from settlement_clock where id = 1 for update), 'epoch'::timestamptz),
			coalesce((select max(ends_at) from settlement_cycles where closed), 'epoch'::timestamptz)`).
		Scan(&seen, &floor)
	if err != nil {
		return fmt.Errorf("read the settlement clock: %w", err)
	}
	used := false
	for _, e := range batch {
		if !settlementTypes[e.Type] {
			continue
		}
		used = true
		if e.CreatedAt.After(seen) {
			seen = e.CreatedAt
		}
		p, err := eventstore.PayloadOf(e, events.Decode)
		if err != nil {
			return applyError(e, err)
		}
		lines, err := s.movement(ctx, tx, e, p)
		if err != nil {
			return applyError(e, err)
		}
		if len(lines) == 0 {
			continue
		}
		// The cycle of the completing event's append, unless that one is closed: then the first open one.
		at := e.CreatedAt
		if open := seen.Add(-s.Grace); open.After(at) {
			at = open
		}
		if floor.After(at) {
			at = floor
		}
		c := s.Schedule.CycleOf(at)
		if _, err := tx.Exec(ctx, `
			insert into settlement_cycles (cycle_id, starts_at, ends_at, closes_at) values ($1, $2, $3, $4)
			on conflict (cycle_id) do nothing`, c.ID, c.Start, c.End, c.End.Add(s.Grace)); err != nil {
			return applyError(e, fmt.Errorf("record cycle %s: %w", c.ID, err))
		}
		for _, l := range lines {
			if _, err := tx.Exec(ctx, `
				insert into settlement_lines (movement_id, side, cycle_id, bank, type, upi_txn_id, rrn, payer_vpa,
					payee_vpa, amount_paise, npci_code, at, tx_id, global_position)
				values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::bigint::text::xid8, $14)`,
				l.movement, l.side, c.ID, l.bank, l.typ, l.txn, l.rrn, l.payer, l.payee, l.amount, l.npci,
				e.CreatedAt, txID(e), e.Position.GlobalPosition); err != nil {
				return applyError(e, fmt.Errorf("file %s %s of movement %s: %w", l.typ, l.side, l.movement, err))
			}
		}
	}
	if !used {
		return nil
	}
	if _, err := tx.Exec(ctx, `
		insert into settlement_clock (id, seen_at) values (1, $1)
		on conflict (id) do update set seen_at = greatest(settlement_clock.seen_at, excluded.seen_at)`, seen); err != nil {
		return fmt.Errorf("move the settlement clock: %w", err)
	}
	if _, err := tx.Exec(ctx, `
		update settlement_cycles set closed = true, closed_at = $1 where not closed and closes_at <= $1`, seen); err != nil {
		return fmt.Errorf("close settlement cycles: %w", err)
	}
	return nil
}

// errNotBegun: a movement's completing event without its beginning.
var errNotBegun = errors.New("ordering violation: the movement was not begun")

// movement records what e begins or completes; for a completing event it returns the movement's lines.
func (s Settlement) movement(ctx context.Context, tx pgx.Tx, e eventstore.Event, p events.Payload) ([]line, error) {
	switch p := p.(type) {
	case events.PaymentInitiatedV1:
		typ := MovementP2P
		if p.PayeeType == events.AccountEntity {
			typ = MovementP2M
		}
		txn := p.UPITxnID
		if txn == "" {
			if id, err := uuid.Parse(p.PaymentID); err == nil {
				txn = ids.UPITxnID(id)
			}
		}
		return nil, s.begin(ctx, tx, p.PaymentID, typ, txn, p.PayerVPA, p.PayeeVPA, p.AmountPaise)
	case events.AccountDebitedV1:
		return nil, s.reference(ctx, tx, p.PaymentID, p.RRN)
	case events.PaymentCompletedV1:
		return s.complete(ctx, tx, p.PaymentID, "", npciApproved)
	case events.PaymentFailedV1:
		return nil, s.forget(ctx, tx, p.PaymentID)
	case events.DebitReversedV1:
		return s.complete(ctx, tx, p.PaymentID, MovementReversal, events.NPCICode(p.Code))
	case events.RefundInitiatedV1:
		// The merchant (the payment's payee) pays the customer (its payer) back.
		return nil, s.begin(ctx, tx, p.RefundID, MovementRefund, p.UPITxnID, p.PayeeVPA, p.PayerVPA, p.AmountPaise)
	case events.RefundDebitedV1:
		return nil, s.reference(ctx, tx, p.RefundID, p.RRN)
	case events.RefundCompletedV1:
		return s.complete(ctx, tx, p.RefundID, "", npciApproved)
	case events.RefundFailedV1:
		return nil, s.forget(ctx, tx, p.RefundID)
	case events.RefundDebitReversedV1:
		return s.complete(ctx, tx, p.RefundID, MovementReversal, events.NPCICode(p.Code))
	case events.FundsDepositedV1:
		bankSide := p.Settlement
		if bankSide == "" {
			bankSide = "settlement:" + events.BankOf(p.VPA)
		}
		return pair(e.ID.String(), MovementDeposit, e.ID.String(), "", bankSide, p.VPA, p.AmountPaise, npciApproved), nil
	case events.FundsWithdrawnV1:
		return pair(p.WithdrawalID, MovementWithdrawal, p.WithdrawalID, p.RRN, p.VPA, p.Settlement, p.AmountPaise, npciApproved), nil
	}
	return nil, nil
}

// pair is a movement's two lines: the payer's bank's DEBIT and the payee's bank's CREDIT. A settlement
// account's bank is its stream's.
func pair(movement, typ, txn, rrn, payer, payee string, amount int64, npci string) []line {
	l := line{movement: movement, typ: typ, txn: txn, rrn: rrn, payer: payer, payee: payee, amount: amount, npci: npci}
	debit, credit := l, l
	debit.side, debit.bank = "DEBIT", bankOf(payer)
	credit.side, credit.bank = "CREDIT", bankOf(payee)
	return []line{debit, credit}
}

// bankOf is the bank of a VPA or of a settlement stream (settlement:BANK:NN).
func bankOf(party string) string {
	if k, err := parseSettlementStream(party); err == nil {
		return k.bank
	}
	if len(party) > len("settlement:") && party[:len("settlement:")] == "settlement:" {
		return party[len("settlement:"):]
	}
	return events.BankOf(party)
}

func (Settlement) begin(ctx context.Context, tx pgx.Tx, id, typ, txn, payer, payee string, amount int64) error {
	if _, err := tx.Exec(ctx, `
		insert into settlement_pending (movement_id, type, upi_txn_id, payer_vpa, payee_vpa, amount_paise)
		values ($1, $2, $3, $4, $5, $6)`, id, typ, txn, payer, payee, amount); err != nil {
		return fmt.Errorf("begin movement %s: %w", id, err)
	}
	return nil
}

func (Settlement) reference(ctx context.Context, tx pgx.Tx, id, rrn string) error {
	tag, err := tx.Exec(ctx, `update settlement_pending set rrn = $2 where movement_id = $1`, id, rrn)
	if err != nil {
		return fmt.Errorf("reference movement %s: %w", id, err)
	}
	if tag.RowsAffected() != 1 {
		return errNotBegun
	}
	return nil
}

// forget drops a movement that ended with no money moved (a payment or refund whose debit was refused).
func (Settlement) forget(ctx context.Context, tx pgx.Tx, id string) error {
	if _, err := tx.Exec(ctx, `delete from settlement_pending where movement_id = $1`, id); err != nil {
		return fmt.Errorf("forget movement %s: %w", id, err)
	}
	return nil
}

// complete ends a pending movement and returns its lines: of its own type, or a reversal (typ), which
// gives the payer back its debit (both lines at the payer's bank).
func (Settlement) complete(ctx context.Context, tx pgx.Tx, id, typ, npci string) ([]line, error) {
	var own, txn, payer, payee string
	var rrn *string
	var amount int64
	err := tx.QueryRow(ctx, `
		delete from settlement_pending where movement_id = $1
		returning type, upi_txn_id, payer_vpa, payee_vpa, amount_paise, rrn`, id).
		Scan(&own, &txn, &payer, &payee, &amount, &rrn)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNotBegun
	}
	if err != nil {
		return nil, fmt.Errorf("complete movement %s: %w", id, err)
	}
	r := ""
	if rrn != nil {
		r = *rrn
	}
	if typ == "" {
		return pair(id, own, txn, r, payer, payee, amount, npci), nil
	}
	lines := pair(id, typ, txn, r, payer, payee, amount, npci)
	lines[1].bank = lines[0].bank // the money goes back where it came from
	return lines, nil
}
