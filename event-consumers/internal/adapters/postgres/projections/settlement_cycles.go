package projections

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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

// Apply implements runner.Projection. The batch is folded in memory, event by event in log order, and
// written in two round trips whatever its size: first the clock and the pending movements the batch
// ends (taken out of settlement_pending), then one statement per table. A movement begun and completed
// within the batch never touches settlement_pending.
func (s Settlement) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	if !slices.ContainsFunc(batch, s.Uses) {
		return nil
	}
	b := settlementBatch{s: s, pending: map[string]*pendingMovement{}}
	if err := b.load(ctx, tx, batch); err != nil {
		return err
	}
	for _, e := range batch {
		if !settlementTypes[e.Type] {
			continue
		}
		if err := b.add(e); err != nil {
			return applyError(e, err)
		}
	}
	return b.write(ctx, tx)
}

// settlementBatch is what a batch does to the settlement tables, gathered event by event.
type settlementBatch struct {
	s Settlement
	// seen is the clock, moved by every event the projection uses; floor is the end of the latest closed
	// cycle when the batch began.
	seen, floor time.Time
	// pending are the movements the batch begins or continues, by id; a completed or forgotten one is
	// nil. Those the batch continues and ends were taken out of settlement_pending by load; those it only
	// gives their reference stay there (remote) and are updated; the new ones left at the end go in.
	pending map[string]*pendingMovement
	order   []string // the ids of pending, first seen first
	cycles  cycleRows
	lines   lineRows
}

// pendingMovement is a row of settlement_pending.
type pendingMovement struct {
	typ, txn, payer, payee string
	amount                 int64
	rrn                    *string
	remote                 bool // left in settlement_pending: only its rrn is known here
}

// Steps of a movement (movementOf).
const (
	stepBegin = iota + 1
	stepReference
	stepEnd // completed or forgotten
)

// movementOf is the id of the movement that e begins, references, completes or forgets, and which of
// those it does (id "" for a deposit or a withdrawal, which is whole in its one event).
func movementOf(p events.Payload) (id string, step int) {
	switch p := p.(type) {
	case events.PaymentInitiatedV1:
		return p.PaymentID, stepBegin
	case events.RefundInitiatedV1:
		return p.RefundID, stepBegin
	case events.AccountDebitedV1:
		return p.PaymentID, stepReference
	case events.RefundDebitedV1:
		return p.RefundID, stepReference
	case events.PaymentCompletedV1:
		return p.PaymentID, stepEnd
	case events.PaymentFailedV1:
		return p.PaymentID, stepEnd
	case events.DebitReversedV1:
		return p.PaymentID, stepEnd
	case events.RefundCompletedV1:
		return p.RefundID, stepEnd
	case events.RefundFailedV1:
		return p.RefundID, stepEnd
	case events.RefundDebitReversedV1:
		return p.RefundID, stepEnd
	}
	return "", 0
}

// load reads the clock (locking it for the batch: the Closer closes cycles under the same lock) and takes
// out of settlement_pending the movements that the batch ends without having begun them, in one round
// trip.
func (b *settlementBatch) load(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	// continued: the movements begun before the batch, by id: whether the batch ends them.
	continued := map[string]bool{}
	var ids, ended []string
	begun := map[string]bool{}
	for _, e := range batch {
		if !settlementTypes[e.Type] {
			continue
		}
		p, err := eventstore.PayloadOf(e, events.Decode)
		if err != nil {
			return applyError(e, err)
		}
		id, step := movementOf(p)
		switch {
		case id == "" || begun[id]:
		case step == stepBegin:
			begun[id] = true
		default:
			if _, ok := continued[id]; !ok {
				ids = append(ids, id)
			}
			continued[id] = continued[id] || step == stepEnd
		}
	}
	for _, id := range ids {
		if continued[id] {
			ended = append(ended, id)
		} else {
			b.keep(id, &pendingMovement{remote: true})
		}
	}
	q := &pgx.Batch{}
	q.Queue(`
		select coalesce((select seen_at from settlement_clock where id = 1 for update), 'epoch'::timestamptz),
			coalesce((select max(ends_at) from settlement_cycles where closed), 'epoch'::timestamptz)`)
	if len(ended) > 0 {
		q.Queue(`
			delete from settlement_pending where movement_id = any($1)
			returning movement_id, type, upi_txn_id, payer_vpa, payee_vpa, amount_paise, rrn`, ended)
	}
	r := tx.SendBatch(ctx, q)
	defer r.Close()
	if err := r.QueryRow().Scan(&b.seen, &b.floor); err != nil {
		return fmt.Errorf("read the settlement clock: %w", err)
	}
	if len(ended) > 0 {
		rows, err := r.Query()
		if err != nil {
			return fmt.Errorf("take the pending movements the batch ends: %w", err)
		}
		for rows.Next() {
			var id string
			m := &pendingMovement{}
			if err := rows.Scan(&id, &m.typ, &m.txn, &m.payer, &m.payee, &m.amount, &m.rrn); err != nil {
				rows.Close()
				return fmt.Errorf("take the pending movements the batch ends: %w", err)
			}
			b.keep(id, m)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("take the pending movements the batch ends: %w", err)
		}
	}
	return r.Close()
}

// keep records movement id as pending.
func (b *settlementBatch) keep(id string, m *pendingMovement) {
	if _, ok := b.pending[id]; !ok {
		b.order = append(b.order, id)
	}
	b.pending[id] = m
}

// add applies one event the projection uses: the clock moves, a movement begins, gets its reference,
// ends with no money moved, or completes and is filed.
func (b *settlementBatch) add(e eventstore.Event) error {
	if e.CreatedAt.After(b.seen) {
		b.seen = e.CreatedAt
	}
	p, err := eventstore.PayloadOf(e, events.Decode)
	if err != nil {
		return err
	}
	lines, err := b.movement(e, p)
	if err != nil || len(lines) == 0 {
		return err
	}
	// The cycle of the completing event's append, unless that one is closed: then the first open one.
	at := e.CreatedAt
	if open := b.seen.Add(-b.s.Grace); open.After(at) {
		at = open
	}
	if b.floor.After(at) {
		at = b.floor
	}
	c := b.s.Schedule.CycleOf(at)
	b.cycles.add(c, b.s.Grace)
	for _, l := range lines {
		b.lines.add(l, c.ID, e)
	}
	return nil
}

// movement records what e begins or completes; for a completing event it returns the movement's lines.
func (b *settlementBatch) movement(e eventstore.Event, p events.Payload) ([]line, error) {
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
		return nil, b.begin(p.PaymentID, typ, txn, p.PayerVPA, p.PayeeVPA, p.AmountPaise)
	case events.AccountDebitedV1:
		return nil, b.reference(p.PaymentID, p.RRN)
	case events.PaymentCompletedV1:
		return b.complete(p.PaymentID, "", npciApproved)
	case events.PaymentFailedV1:
		b.forget(p.PaymentID)
	case events.DebitReversedV1:
		return b.complete(p.PaymentID, MovementReversal, events.NPCICode(p.Code))
	case events.RefundInitiatedV1:
		// The merchant (the payment's payee) pays the customer (its payer) back: of its own will, or as
		// a dispute's chargeback.
		typ := MovementRefund
		if p.Chargeback {
			typ = MovementChargeback
		}
		return nil, b.begin(p.RefundID, typ, p.UPITxnID, p.PayeeVPA, p.PayerVPA, p.AmountPaise)
	case events.RefundDebitedV1:
		return nil, b.reference(p.RefundID, p.RRN)
	case events.RefundCompletedV1:
		return b.complete(p.RefundID, "", npciApproved)
	case events.RefundFailedV1:
		b.forget(p.RefundID)
	case events.RefundDebitReversedV1:
		return b.complete(p.RefundID, MovementReversal, events.NPCICode(p.Code))
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

// errNotBegun: a movement's completing event without its beginning.
var errNotBegun = errors.New("ordering violation: the movement was not begun")

// errBegunTwice: a movement begun while it is pending.
var errBegunTwice = errors.New("ordering violation: the movement is already pending")

func (b *settlementBatch) begin(id, typ, txn, payer, payee string, amount int64) error {
	if b.pending[id] != nil {
		return errBegunTwice
	}
	b.keep(id, &pendingMovement{typ: typ, txn: txn, payer: payer, payee: payee, amount: amount})
	return nil
}

func (b *settlementBatch) reference(id, rrn string) error {
	m := b.pending[id]
	if m == nil {
		return errNotBegun
	}
	m.rrn = &rrn
	return nil
}

// forget drops a movement that ended with no money moved (a payment or refund whose debit was refused).
func (b *settlementBatch) forget(id string) {
	if _, ok := b.pending[id]; ok {
		b.pending[id] = nil
	}
}

// complete ends a pending movement and returns its lines: of its own type, or a reversal (typ), which
// gives the payer back its debit (both lines at the payer's bank).
func (b *settlementBatch) complete(id, typ, npci string) ([]line, error) {
	m := b.pending[id]
	if m == nil {
		return nil, errNotBegun
	}
	b.pending[id] = nil
	r := ""
	if m.rrn != nil {
		r = *m.rrn
	}
	if typ == "" {
		return pair(id, m.typ, m.txn, r, m.payer, m.payee, m.amount, npci), nil
	}
	lines := pair(id, typ, m.txn, r, m.payer, m.payee, m.amount, npci)
	lines[1].bank = lines[0].bank // the money goes back where it came from
	return lines, nil
}

// write writes what the batch did, one statement per table, in one round trip: the movements still
// pending, the cycles and lines filed, the clock, and the cycles it closes.
func (b *settlementBatch) write(ctx context.Context, tx pgx.Tx) error {
	q := &pgx.Batch{}
	var what []string
	var pend pendingRows
	var refID, refRRN []string
	for _, id := range b.order {
		switch m := b.pending[id]; {
		case m == nil:
		case m.remote:
			refID, refRRN = append(refID, id), append(refRRN, *m.rrn)
		default:
			pend.add(id, m)
		}
	}
	if len(refID) > 0 {
		q.Queue(`
			update settlement_pending p set rrn = u.rrn from unnest($1::text[], $2::text[]) as u(id, rrn)
			where p.movement_id = u.id`, refID, refRRN)
		what = append(what, "reference pending movements")
	}
	if len(pend.id) > 0 {
		q.Queue(`
			insert into settlement_pending (movement_id, type, upi_txn_id, payer_vpa, payee_vpa, amount_paise, rrn)
			select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[])`,
			pend.id, pend.typ, pend.txn, pend.payer, pend.payee, pend.amount, pend.rrn)
		what = append(what, "record pending movements")
	}
	if c := b.cycles; len(c.id) > 0 {
		q.Queue(`
			insert into settlement_cycles (cycle_id, starts_at, ends_at, closes_at)
			select * from unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[])
			on conflict (cycle_id) do nothing`, c.id, c.start, c.end, c.closes)
		what = append(what, "record cycles")
	}
	if l := b.lines; len(l.movement) > 0 {
		q.Queue(`
			insert into settlement_lines (movement_id, side, cycle_id, bank, type, upi_txn_id, rrn, payer_vpa,
				payee_vpa, amount_paise, npci_code, at, tx_id, global_position)
			select movement, side, cycle, bank, typ, txn, rrn, payer, payee, amount, npci, at, txid::text::xid8, gp
			from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
				$8::text[], $9::text[], $10::bigint[], $11::text[], $12::timestamptz[], $13::bigint[], $14::bigint[])
				as u(movement, side, cycle, bank, typ, txn, rrn, payer, payee, amount, npci, at, txid, gp)`,
			l.movement, l.side, l.cycle, l.bank, l.typ, l.txn, l.rrn, l.payer, l.payee, l.amount, l.npci,
			l.at, l.tx, l.gp)
		what = append(what, "file settlement lines")
	}
	q.Queue(`
		insert into settlement_clock (id, seen_at) values (1, $1)
		on conflict (id) do update set seen_at = greatest(settlement_clock.seen_at, excluded.seen_at)`, b.seen)
	q.Queue(`update settlement_cycles set closed = true, closed_at = $1 where not closed and closes_at <= $1`, b.seen)
	what = append(what, "move the settlement clock", "close settlement cycles")
	return execBatch(ctx, tx, q, what, func(i int, tag pgconn.CommandTag) error {
		if i == 0 && len(refID) > 0 && int(tag.RowsAffected()) != len(refID) {
			return fmt.Errorf("reference pending movements: %d of %d found: %w", tag.RowsAffected(), len(refID), errNotBegun)
		}
		return nil
	})
}

// execBatch sends q's statements in one round trip and names the first that failed (what[i] says what
// the i-th does); check, when not nil, checks each one's command tag.
func execBatch(ctx context.Context, tx pgx.Tx, q *pgx.Batch, what []string, check func(i int, tag pgconn.CommandTag) error) error {
	r := tx.SendBatch(ctx, q)
	defer r.Close()
	for i, w := range what {
		tag, err := r.Exec()
		if err != nil {
			return fmt.Errorf("%s: %w", w, err)
		}
		if check != nil {
			if err := check(i, tag); err != nil {
				return err
			}
		}
	}
	return r.Close()
}

// pendingRows are movements left pending by a batch, column by column for unnest.
type pendingRows struct {
	id, typ, txn, payer, payee []string
	amount                     []int64
	rrn                        []*string
}

func (r *pendingRows) add(id string, m *pendingMovement) {
	r.id, r.typ, r.txn = append(r.id, id), append(r.typ, m.typ), append(r.txn, m.txn)
	r.payer, r.payee, r.amount, r.rrn = append(r.payer, m.payer), append(r.payee, m.payee), append(r.amount, m.amount), append(r.rrn, m.rrn)
}

// cycleRows are the cycles a batch files lines under, each once.
type cycleRows struct {
	id                 []string
	start, end, closes []time.Time
}

func (r *cycleRows) add(c settlement.Cycle, grace time.Duration) {
	if slices.Contains(r.id, c.ID) {
		return
	}
	r.id, r.start, r.end, r.closes = append(r.id, c.ID), append(r.start, c.Start), append(r.end, c.End), append(r.closes, c.End.Add(grace))
}

// lineRows are the lines a batch files, column by column for unnest.
type lineRows struct {
	movement, side, cycle, bank, typ, txn, rrn, payer, payee []string
	amount                                                   []int64
	npci                                                     []string
	stamps
}

func (r *lineRows) add(l line, cycle string, e eventstore.Event) {
	r.movement, r.side, r.cycle, r.bank = append(r.movement, l.movement), append(r.side, l.side), append(r.cycle, cycle), append(r.bank, l.bank)
	r.typ, r.txn, r.rrn = append(r.typ, l.typ), append(r.txn, l.txn), append(r.rrn, l.rrn)
	r.payer, r.payee, r.amount, r.npci = append(r.payer, l.payer), append(r.payee, l.payee), append(r.amount, l.amount), append(r.npci, l.npci)
	r.stamps.add(e)
}
