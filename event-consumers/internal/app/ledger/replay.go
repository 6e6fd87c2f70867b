package ledger

import (
	"fmt"
	"maps"
	"time"

	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/platform/eventstore"
)

// replay is the fold of the log the checks read: every stream's version and balance, the money in transit,
// the payments', refunds' and withdrawals' outcomes, the RRNs, and what broke where.
type replay struct {
	pos      eventstore.Position // the last event applied
	versions map[string]int      // every stream's last version

	accounts    map[string]Account
	shards      map[string]Settlement
	payments    map[string]*flight
	refunds     map[string]*flight
	withdrawals map[string]Withdrawal
	rrns        map[string]string // rrn -> what it was given to

	// The three parts of the sum, kept as running totals.
	accountSum, settlementSum, transitSum int64

	// Transaction boundaries: the one being applied, how many were checked, and the breaks.
	tx           uint64
	txLast       eventstore.Position
	transactions int
	breaks       int
	firstBreak   string

	streamProblems, balanceProblems, rrnProblems problems
	// orphans are movements of payments or refunds the log never started, with the money they hold.
	orphans       map[string]*flight
	orphanProblem problems

	// Captures of the fold at the projections' checkpoints.
	captures []*capture
}

// flight is a payment or a refund: when it started, its outcome, and the money it holds in transit.
type flight struct {
	started  time.Time
	terminal bool
	held     int64
	Payment  // payments only
}

// capture is the fold as of a projection's checkpoint.
type capture struct {
	at          eventstore.Position
	done        bool
	accounts    map[string]Account
	shards      map[string]Settlement
	payments    map[string]Payment
	withdrawals map[string]Withdrawal
}

// problems counts one kind of failure and remembers the first.
type problems struct {
	n     int
	first string
}

func (p *problems) add(format string, args ...any) {
	if p.n == 0 {
		p.first = fmt.Sprintf(format, args...)
	}
	p.n++
}

func newReplay() *replay {
	return &replay{pos: eventstore.Start, versions: map[string]int{}, accounts: map[string]Account{},
		shards: map[string]Settlement{}, payments: map[string]*flight{}, refunds: map[string]*flight{},
		withdrawals: map[string]Withdrawal{}, rrns: map[string]string{}, orphans: map[string]*flight{}}
}

// captureAt asks for the fold as of each position.
func (r *replay) captureAt(at ...eventstore.Position) {
	for _, p := range at {
		r.captures = append(r.captures, &capture{at: p})
	}
}

// takeCaptures captures the fold for every checkpoint before position next (all that remain, at the end).
func (r *replay) takeCaptures(next *eventstore.Position) {
	for _, c := range r.captures {
		if c.done || (next != nil && !c.at.Less(*next)) {
			continue
		}
		c.done = true
		c.accounts, c.shards, c.withdrawals = maps.Clone(r.accounts), maps.Clone(r.shards), maps.Clone(r.withdrawals)
		c.payments = make(map[string]Payment, len(r.payments))
		for id, p := range r.payments {
			c.payments[id] = p.Payment
		}
	}
}

// apply folds one event, after checking the transaction boundary it may cross.
func (r *replay) apply(e eventstore.Event) {
	if r.transactions > 0 && e.Position.TxID != r.tx {
		r.boundary()
	}
	if r.transactions == 0 || e.Position.TxID != r.tx {
		r.tx = e.Position.TxID
		r.transactions++
	}
	r.takeCaptures(&e.Position)
	r.pos, r.txLast = e.Position, e.Position

	if want := r.versions[e.AggregateID] + 1; e.Version != want {
		r.streamProblems.add("%s %s is version %d, expected %d (at %s)", e.Type, e.AggregateID, e.Version, want, e.Position.Token())
	}
	r.versions[e.AggregateID] = e.Version
	p, err := eventstore.PayloadOf(e, events.Decode)
	if err != nil {
		r.streamProblems.add("event %s (%s at %s) does not decode: %v", e.ID, e.Type, e.Position.Token(), err)
		return
	}
	switch p := p.(type) {
	case events.AccountOpenedV1:
		a := r.accounts[e.AggregateID]
		a.Version = e.Version
		r.accounts[e.AggregateID] = a
	case events.FundsDepositedV1:
		r.account(e, p.AmountPaise, p.BalanceAfterPaise)
	case events.FundsWithdrawnV1:
		r.account(e, -p.AmountPaise, p.BalanceAfterPaise)
		r.withdrawals[p.WithdrawalID] = Withdrawal{VPA: e.AggregateID, Amount: p.AmountPaise, Status: contract.PaymentCompleted, RRN: p.RRN}
		r.rrn(p.RRN, "withdrawal "+p.WithdrawalID)
	case events.WithdrawalRejectedV1:
		r.account(e, 0, p.BalancePaise)
		r.withdrawals[p.WithdrawalID] = Withdrawal{VPA: e.AggregateID, Amount: p.AmountPaise, Status: contract.PaymentFailed, FailureCode: p.Code}
	case events.SettlementDebitedV1:
		r.shard(e, -p.AmountPaise, p.BalanceAfterPaise, 1, 0)
	case events.SettlementCreditedV1:
		r.shard(e, p.AmountPaise, p.BalanceAfterPaise, 0, 1)

	case events.PaymentInitiatedV1:
		r.payments[p.PaymentID] = &flight{started: e.CreatedAt, Payment: Payment{Status: contract.PaymentPending}}
	case events.AccountDebitedV1:
		r.account(e, -p.AmountPaise, p.BalanceAfterPaise)
		f := r.flightOf(r.payments, p.PaymentID, e)
		r.hold(f, p.AmountPaise)
		f.RRN = p.RRN
		r.rrn(p.RRN, "payment "+p.PaymentID)
	case events.DebitRejectedV1:
		r.account(e, 0, p.BalancePaise)
	case events.AccountCreditedV1:
		r.account(e, p.AmountPaise, p.BalanceAfterPaise)
		r.release(r.flightOf(r.payments, p.PaymentID, e))
	case events.DebitReversedV1:
		r.account(e, p.AmountPaise, p.BalanceAfterPaise)
		r.release(r.flightOf(r.payments, p.PaymentID, e))
	case events.PaymentCompletedV1:
		f := r.flightOf(r.payments, p.PaymentID, e)
		f.terminal, f.Status = true, contract.PaymentCompleted
	case events.PaymentFailedV1:
		f := r.flightOf(r.payments, p.PaymentID, e)
		f.terminal, f.Status, f.FailureCode = true, contract.PaymentFailed, p.Code

	case events.RefundReservedV1:
		r.refunds[p.RefundID] = &flight{started: e.CreatedAt}
	case events.RefundDebitedV1:
		r.account(e, -p.AmountPaise, p.BalanceAfterPaise)
		r.hold(r.flightOf(r.refunds, p.RefundID, e), p.AmountPaise)
		r.rrn(p.RRN, "refund "+p.RefundID)
	case events.RefundDebitRejectedV1:
		r.account(e, 0, p.BalancePaise)
	case events.RefundCreditedV1:
		r.account(e, p.AmountPaise, p.BalanceAfterPaise)
		r.release(r.flightOf(r.refunds, p.RefundID, e))
	case events.RefundDebitReversedV1:
		r.account(e, p.AmountPaise, p.BalanceAfterPaise)
		r.release(r.flightOf(r.refunds, p.RefundID, e))
	case events.RefundSettledV1:
		r.flightOf(r.refunds, p.RefundID, e).terminal = true

	case events.AccountErasedV1:
		// An erased account is closed with nothing in it: its balance stays zero for good.
		r.account(e, 0, 0)
	}
}

// account folds a change of an account's balance and checks the balance the event recorded.
func (r *replay) account(e eventstore.Event, delta, after int64) {
	a := r.accounts[e.AggregateID]
	a.Balance += delta
	a.Version = e.Version
	r.accounts[e.AggregateID] = a
	r.accountSum += delta
	if a.Balance != after {
		r.balanceProblems.add("%s %s v%d records balance %d, the fold gives %d (at %s)", e.Type, e.AggregateID, e.Version, after, a.Balance, e.Position.Token())
	} else if a.Balance < 0 {
		r.balanceProblems.add("%s %s v%d leaves the account at %d (at %s)", e.Type, e.AggregateID, e.Version, a.Balance, e.Position.Token())
	}
}

// shard folds a move of a settlement shard and checks the balance the event recorded.
func (r *replay) shard(e eventstore.Event, delta, after, deposits, withdrawals int64) {
	s := r.shards[e.AggregateID]
	s.Balance += delta
	s.Deposits += deposits
	s.Withdrawals += withdrawals
	s.Version = e.Version
	r.shards[e.AggregateID] = s
	r.settlementSum += delta
	if s.Balance != after {
		r.balanceProblems.add("%s %s v%d records balance %d, the fold gives %d (at %s)", e.Type, e.AggregateID, e.Version, after, s.Balance, e.Position.Token())
	}
}

// flightOf is the payment or refund id of flights. One the log never started is an orphan: its movements
// still count in the sums (so money it moves shows there), and the in-flight check names it.
func (r *replay) flightOf(flights map[string]*flight, id string, e eventstore.Event) *flight {
	if f := flights[id]; f != nil {
		return f
	}
	f := r.orphans[id]
	if f == nil {
		f = &flight{started: e.CreatedAt}
		r.orphans[id] = f
	}
	r.orphanProblem.add("%s %s at %s names %s, which the log never started", e.Type, e.AggregateID, e.Position.Token(), id)
	return f
}

// hold puts a debit's money in transit.
func (r *replay) hold(f *flight, amount int64) {
	f.held += amount
	r.transitSum += amount
}

// release takes out of transit what the payment or refund held: its credit or its reversal settles it.
// The account side was credited with the event's own amount, so a credit of money that nobody debited, or
// of more than was debited, shows in the sum.
func (r *replay) release(f *flight) {
	r.transitSum -= f.held
	f.held = 0
}

// rrn records an RRN's owner; an RRN given twice is a problem.
func (r *replay) rrn(rrn, owner string) {
	if rrn == "" {
		return // written before RRNs existed
	}
	if other, dup := r.rrns[rrn]; dup {
		r.rrnProblems.add("RRN %s given to %s and to %s", rrn, other, owner)
		return
	}
	r.rrns[rrn] = owner
}

// boundary checks the sum after the transaction just applied.
func (r *replay) boundary() {
	if sum := r.sum(); sum != 0 {
		r.breaks++
		if r.breaks == 1 {
			r.firstBreak = fmt.Sprintf("the sum is %d paise after the transaction ending at %s (tx %d)", sum, r.txLast.Token(), r.tx)
		}
	}
}

func (r *replay) sum() int64 { return r.accountSum + r.settlementSum + r.transitSum }

// end checks the last transaction's boundary and takes the captures still due.
func (r *replay) end() {
	if r.transactions > 0 {
		r.boundary()
	}
	r.takeCaptures(nil)
}
