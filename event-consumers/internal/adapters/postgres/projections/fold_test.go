package projections_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"upi/event-consumers/internal/adapters/postgres/projections"
	schedule "upi/event-consumers/internal/app/settlement"
	"upi/event-consumers/internal/runner"
	"upi/shared/contract/events"
	"upi/shared/platform/eventstore"
	"upi/testenv"
)

// movementsLog is a log of every kind of money movement the settlement and payments projections fold:
// payments completed, failed and reversed, refunds completed, failed and reversed, deposits and
// withdrawals, spread over several settlement cycles of a second, with a few events appended late (a
// transaction that committed past the grace).
func movementsLog(t *testing.T) []eventstore.Event {
	t.Helper()
	base := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	var log []eventstore.Event
	// groups are the events' movements: interleave moves an event only past another movement's.
	var groups []string
	group := ""
	at := base
	add := func(aggregate, aggType string, version int, p events.Payload) {
		e := event(aggregate, version, p)
		e.AggregateType = aggType
		at = at.Add(90 * time.Millisecond)
		e.CreatedAt = at
		if len(log)%17 == 16 { // late: appended well before the events around it
			e.CreatedAt = at.Add(-2500 * time.Millisecond)
		}
		log, groups = append(log, e), append(groups, group)
	}
	const payment, account, refunds = events.AggregatePayment, events.AggregateAccount, events.AggregateRefund
	versions := map[string]int{}
	next := func(stream string) int { versions[stream]++; return versions[stream] }
	acct := func(vpa string, p events.Payload) { add(vpa, account, next(vpa), p) }
	for _, vpa := range []string{"a@hdfc", "b@icici", "m@sbi"} { // opened first, left first
		acct(vpa, events.AccountOpenedV1{VPA: vpa, HolderName: "H", OwnerClientID: "c-" + vpa})
	}
	pay := func(n int, outcome string) string {
		pid := uuid.NewString()
		group = pid
		payer, payee := "a@hdfc", "b@icici"
		if n%2 == 1 {
			payer, payee = "b@icici", "m@sbi"
		}
		amount := int64(100 + n)
		add(pid, payment, next(pid), events.PaymentInitiatedV1{PaymentID: pid, PayerVPA: payer, PayeeVPA: payee,
			AmountPaise: amount, ClientID: "c", UPITxnID: fmt.Sprintf("TXN%04d", n)})
		if outcome == "failed" {
			add(pid, payment, next(pid), events.PaymentFailedV1{PaymentID: pid, Code: events.CodeInsufficientFunds})
			return pid
		}
		acct(payer, events.AccountDebitedV1{VPA: payer, PaymentID: pid, AmountPaise: amount, CounterpartyVPA: payee,
			RRN: fmt.Sprintf("RRN%04d", n)})
		if outcome == "reversed" {
			acct(payer, events.DebitReversedV1{VPA: payer, PaymentID: pid, AmountPaise: amount, CounterpartyVPA: payee,
				Code: events.CodePayeeUnavailable})
			add(pid, payment, next(pid), events.PaymentFailedV1{PaymentID: pid, Code: events.CodePayeeUnavailable})
			return pid
		}
		acct(payee, events.AccountCreditedV1{VPA: payee, PaymentID: pid, AmountPaise: amount, CounterpartyVPA: payer})
		add(pid, payment, next(pid), events.PaymentCompletedV1{PaymentID: pid})
		return pid
	}
	refund := func(n int, pid, outcome string) {
		rid := uuid.NewString()
		group = pid
		r := events.RefundTerms{RefundID: rid, PaymentID: pid, PayerVPA: "a@hdfc", PayeeVPA: "b@icici", AmountPaise: 50}
		txn := fmt.Sprintf("RTXN%04d", n)
		add(pid, payment, next(pid), events.RefundReservedV1{RefundTerms: r, Reason: "R", ClientID: "c", UPITxnID: txn})
		add(rid, refunds, next(rid), events.RefundInitiatedV1{RefundTerms: r, Reason: "R", ClientID: "c", UPITxnID: txn})
		status := events.RefundStatusCompleted
		switch outcome {
		case "failed":
			add(rid, refunds, next(rid), events.RefundDebitRejectedV1{RefundTerms: r, VPA: "b@icici", Code: "X"})
			add(rid, refunds, next(rid), events.RefundFailedV1{RefundTerms: r, Code: "X"})
			status = events.RefundStatusFailed
		case "reversed":
			add(rid, refunds, next(rid), events.RefundDebitedV1{RefundTerms: r, VPA: "b@icici", RRN: "R" + txn})
			add(rid, refunds, next(rid), events.RefundDebitReversedV1{RefundTerms: r, VPA: "b@icici", Code: "X"})
			add(rid, refunds, next(rid), events.RefundFailedV1{RefundTerms: r, Code: "X"})
			status = events.RefundStatusFailed
		default:
			add(rid, refunds, next(rid), events.RefundDebitedV1{RefundTerms: r, VPA: "b@icici", RRN: "R" + txn})
			add(rid, refunds, next(rid), events.RefundCreditedV1{RefundTerms: r, VPA: "a@hdfc"})
			add(rid, refunds, next(rid), events.RefundCompletedV1{RefundTerms: r})
		}
		add(pid, payment, next(pid), events.RefundSettledV1{RefundTerms: r, Status: status})
	}
	// Payments interleaved, as the log has them (interleave spreads each one's events among the others').
	var completed string
	for n := range 40 {
		outcome := []string{"completed", "completed", "failed", "completed", "reversed"}[n%5]
		pid := pay(n, outcome)
		if n%7 == 3 && completed != "" {
			refund(n, completed, []string{"completed", "failed", "reversed"}[n%3])
		}
		if outcome == "completed" {
			completed = pid
		}
		if n%9 == 4 {
			group = uuid.NewString()
			acct("a@hdfc", events.FundsDepositedV1{VPA: "a@hdfc", AmountPaise: 1000, Reference: "r"})
			wid := uuid.NewString()
			group = wid
			acct("b@icici", events.FundsWithdrawnV1{VPA: "b@icici", WithdrawalID: wid, AmountPaise: 10,
				RRN: "W" + wid[:8], Settlement: "settlement:ICICI:03"})
		}
	}
	return interleave(log, groups)
}

// interleave moves events a little later in the log past other movements' events (the log interleaves
// payments' events), keeping each movement's order; events of no movement ("") stay where they are.
// Positions follow the new order.
func interleave(log []eventstore.Event, groups []string) []eventstore.Event {
	rng := rand.New(rand.NewPCG(7, 11))
	for i := len(log) - 2; i >= 0; i-- {
		for j := i; j+1 < len(log) && j < i+4 && groups[j] != "" && groups[j+1] != "" && groups[j] != groups[j+1] &&
			rng.IntN(2) == 0; j++ {
			log[j], log[j+1] = log[j+1], log[j]
			groups[j], groups[j+1] = groups[j+1], groups[j]
		}
	}
	for i := range log {
		log[i].Position = eventstore.Position{TxID: uint64(i + 1), GlobalPosition: int64(i + 1)}
	}
	return log
}

// foldTables applies the log to p in batches cut where cut says, inside a rolled-back transaction, and
// returns the projection's tables as text, row by row in a fixed order (columns in skip left out).
func foldTables(t *testing.T, p runner.Projection, log []eventstore.Event, cut func(i int) bool, skip ...string) map[string]string {
	t.Helper()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var batch []eventstore.Event
	for i, e := range log {
		batch = append(batch, e)
		if cut(i) || i == len(log)-1 {
			if err := p.Apply(ctx, tx, batch); err != nil {
				t.Fatalf("apply: %v", err)
			}
			batch = nil
		}
	}
	out := map[string]string{}
	for _, table := range p.Tables() {
		out[table] = dumpTable(t, ctx, tx, table, skip...)
	}
	return out
}

// dumpTable is table's rows as text, sorted, without the columns in skip.
func dumpTable(t *testing.T, ctx context.Context, tx pgx.Tx, table string, skip ...string) string {
	t.Helper()
	var cols []string
	rows, err := tx.Query(ctx, `select column_name from information_schema.columns
		where table_schema = 'public' and table_name = $1 and not (column_name = any($2)) order by ordinal_position`, table, skip)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, fmt.Sprintf("%q", c))
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	var dump string
	if err := tx.QueryRow(ctx, fmt.Sprintf(`select coalesce(string_agg(r, E'\n' order by r), '')
		from (select (%s)::text as r from %s) t`, "row("+strings.Join(cols, ", ")+")", table)).Scan(&dump); err != nil {
		t.Fatal(err)
	}
	return dump
}

// A movement whose events all arrive in one batch and one whose events are split over batches (of one
// event each, or of any sizes) end up as the same rows: the projections fold a batch in memory and write
// it once, and the result does not depend on where the batches were cut.
func TestProjectionsFoldTheSameWhateverTheBatches(t *testing.T) {
	t.Parallel()
	log := movementsLog(t)
	rng := rand.New(rand.NewPCG(3, 5))
	random := map[int]bool{}
	for i := range log {
		if rng.IntN(6) == 0 {
			random[i] = true
		}
	}
	cutters := map[string]func(int) bool{
		"one batch":      func(int) bool { return false },
		"event by event": func(int) bool { return true },
		"random cuts":    func(i int) bool { return random[i] },
	}
	for _, c := range []struct {
		p    runner.Projection
		skip []string // columns written with the batch's time rather than an event's
	}{
		{projections.Settlement{Schedule: schedule.Schedule{Length: time.Second}, Grace: 500 * time.Millisecond},
			[]string{"closed_at"}},
		{projections.Payments{}, nil},
		{projections.Merchant{}, nil},
		{projections.Complaints{}, nil},
	} {
		t.Run(c.p.Name(), func(t *testing.T) {
			t.Parallel()
			want := foldTables(t, c.p, log, cutters["one batch"], c.skip...)
			filled := 0
			for _, rows := range want {
				if rows != "" {
					filled++
				}
			}
			if filled == 0 && c.p.Name() != "merchant" {
				t.Fatal("the log filled none of the projection's tables")
			}
			if c.p.Name() == "settlement" {
				// Every kind of line, in several cycles, some closed before the batch that filed late events.
				lines, cycles := want["settlement_lines"], want["settlement_cycles"]
				for _, kind := range []string{"P2P", "REFUND", "REVERSAL", "DEPOSIT", "WITHDRAWAL"} {
					if !strings.Contains(lines, ","+kind+",") {
						t.Errorf("no %s line in\n%s", kind, lines)
					}
				}
				if n := strings.Count(cycles, ",t)"); n < 3 || strings.Count(cycles, "\n") < 4 {
					t.Errorf("want several cycles, 3 closed:\n%s", cycles)
				}
				t.Logf("%d lines in %d cycles", strings.Count(lines, "\n")+1, strings.Count(cycles, "\n")+1)
			}
			for name, cut := range cutters {
				if name == "one batch" {
					continue
				}
				got := foldTables(t, c.p, log, cut, c.skip...)
				for table, rows := range want {
					if got[table] != rows {
						t.Errorf("%s, %s: table %s\n%s\nwant (one batch)\n%s", c.p.Name(), name, table, got[table], rows)
					}
				}
			}
		})
	}
}

// A selective projection says which events it uses (runner.Selective): the runner skips its transaction
// for a batch of none of them, so the events it does not use must change nothing of its tables.
func TestSelectiveProjectionsChangeNothingForEventsTheyDoNotUse(t *testing.T) {
	t.Parallel()
	log := movementsLog(t)
	for _, p := range []runner.Projection{
		projections.Settlement{Schedule: schedule.Schedule{Length: time.Second}, Grace: 500 * time.Millisecond},
		projections.Merchant{}, projections.Complaints{}, projections.Accounts{},
	} {
		t.Run(p.Name(), func(t *testing.T) {
			t.Parallel()
			sel, ok := p.(runner.Selective)
			if !ok {
				t.Fatalf("%s is not selective", p.Name())
			}
			var unused []eventstore.Event
			for _, e := range log {
				if !sel.Uses(e) {
					unused = append(unused, e)
				}
			}
			if len(unused) == 0 || len(unused) == len(log) && p.Name() != "merchant" {
				t.Fatalf("%s uses %d of the log's %d events", p.Name(), len(log)-len(unused), len(log))
			}
			for table, rows := range foldTables(t, p, unused, func(int) bool { return false }) {
				if rows != "" {
					t.Errorf("%s: events it does not use wrote to %s:\n%s", p.Name(), table, rows)
				}
			}
		})
	}
}
