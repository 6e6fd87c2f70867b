// Package app answers the query side's questions from the read models: one method per query. It decides
// ownership (who may see what), waits for read-your-writes (min_position) and long-polls payments; how the
// read models are read is behind the Reader port.
package app

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"upi/shared/contract"
	"upi/shared/contract/projection"
	"upi/shared/platform/eventstore"
)

// Errors of the queries; the HTTP layer maps them to problem codes.
var (
	ErrAccountNotFound    = errors.New("account not found")
	ErrPaymentNotFound    = errors.New("payment not found")
	ErrRefundNotFound     = errors.New("refund not found")
	ErrCollectNotFound    = errors.New("collect request not found")
	ErrVPANotFound        = errors.New("vpa not found")
	ErrWithdrawalNotFound = errors.New("withdrawal not found")
	// ErrUnavailable: the database failed or could not be reached (the adapters mark such failures;
	// nothing above them looks at driver errors). A retry later is safe: queries change nothing.
	ErrUnavailable = eventstore.ErrUnavailable
)

// Account is an account row with its owner.
type Account struct {
	contract.Account
	Owner string
}

// Payment is a payment row with the owners who may see it.
type Payment struct {
	contract.Payment
	PayerOwner string
	PayeeOwner string
}

// visibleTo reports whether client owns the payer or the payee.
func (p Payment) visibleTo(client string) bool {
	return client != "" && (client == p.PayerOwner || client == p.PayeeOwner)
}

// Terminal reports whether the payment can no longer change.
func (p Payment) Terminal() bool { return p.Status != contract.PaymentPending }

// Reader reads the read models. Each method reads in one snapshot: the data, and the checkpoint of the
// projection that built it, so the checkpoint says exactly what the data reflects. A missing row is
// reported with found=false, not an error.
type Reader interface {
	Account(ctx context.Context, vpa string) (a Account, found bool, cp eventstore.Position, err error)
	// Transactions returns the account's owner and up to limit movements with a version below
	// beforeVersion (0: from the newest), newest first, each with its version.
	Transactions(ctx context.Context, vpa string, beforeVersion, limit int) (owner string, found bool, items []VersionedTransaction, cp eventstore.Position, err error)
	Payment(ctx context.Context, id uuid.UUID) (p Payment, found bool, cp eventstore.Position, err error)
	PaymentEvents(ctx context.Context, id uuid.UUID) (p Payment, found bool, items []contract.PaymentEvent, cp eventstore.Position, err error)
	// PaymentByRRN is the payment whose debit gave it rrn.
	PaymentByRRN(ctx context.Context, rrn string) (p Payment, found bool, cp eventstore.Position, err error)
	// Refund is a refund row with the owners of its payment's accounts.
	Refund(ctx context.Context, id uuid.UUID) (r Refund, found bool, cp eventstore.Position, err error)
	// Collect is a collect request row with the owners of its payee and payer.
	Collect(ctx context.Context, id uuid.UUID) (c Collect, found bool, cp eventstore.Position, err error)
	// Collects returns the owner of payer and up to limit collect requests addressed to it (with status,
	// if not ""), with a seq below beforeSeq (0: from the newest), newest first, each with its seq.
	Collects(ctx context.Context, payer, status string, beforeSeq, limit int) (owner string, found bool, items []SeqCollect, cp eventstore.Position, err error)
	// VPA is what a payee lookup shows of the account with that VPA.
	VPA(ctx context.Context, vpa string) (v contract.VPALookup, found bool, cp eventstore.Position, err error)
	// Withdrawal is a withdrawal row with the owner of its account.
	Withdrawal(ctx context.Context, id uuid.UUID) (w Withdrawal, found bool, cp eventstore.Position, err error)
	// SettlementAccounts are the banks' settlement accounts, one per bank (its shards summed), by bank.
	SettlementAccounts(ctx context.Context) (items []contract.SettlementAccount, cp eventstore.Position, err error)
}

// VersionedTransaction is a movement with its account stream version, the keyset of pagination.
type VersionedTransaction struct {
	contract.Transaction
	Version int
}

// Freshness is what a response's data reflects: the projection checkpoint, and whether it fell short of
// the min_position the client asked for.
type Freshness struct {
	Position eventstore.Position
	Stale    bool
}

// Queries answers the queries.
type Queries struct {
	reader  Reader
	watch   *Watch
	waitMax time.Duration
}

// New returns the queries. waitMax bounds the wait for a min_position.
func New(reader Reader, watch *Watch, waitMax time.Duration) *Queries {
	return &Queries{reader: reader, watch: watch, waitMax: waitMax}
}

// Consistency is what a reader asked for: a position it must see (nil: none).
type Consistency struct {
	MinPosition *eventstore.Position
}

func (q *Queries) await(ctx context.Context, name string, c Consistency) {
	if c.MinPosition != nil {
		q.watch.WaitFor(ctx, name, *c.MinPosition, q.waitMax)
	}
}

func freshness(cp eventstore.Position, c Consistency) Freshness {
	return Freshness{Position: cp, Stale: c.MinPosition != nil && cp.Less(*c.MinPosition)}
}

// Account returns client's account.
func (q *Queries) Account(ctx context.Context, client, vpa string, c Consistency) (contract.Account, Freshness, error) {
	q.await(ctx, projection.Accounts, c)
	a, found, cp, err := q.reader.Account(ctx, vpa)
	f := freshness(cp, c)
	if err != nil {
		return contract.Account{}, f, err
	}
	if !found || a.Owner != client {
		return contract.Account{}, f, ErrAccountNotFound
	}
	return a.Account, f, nil
}

// Balance returns the balance of client's account.
func (q *Queries) Balance(ctx context.Context, client, vpa string, c Consistency) (contract.Balance, Freshness, error) {
	a, f, err := q.Account(ctx, client, vpa, c)
	if err != nil {
		return contract.Balance{}, f, err
	}
	return contract.Balance{VPA: a.VPA, BalancePaise: a.BalancePaise, Currency: a.Currency, Position: a.Position}, f, nil
}

// Transactions returns a page of client's account's movements, newest first. cursor is 0 for the first
// page, else the version returned as next by the previous page; next is 0 on the last page.
func (q *Queries) Transactions(ctx context.Context, client, vpa string, cursor, limit int, c Consistency) (items []contract.Transaction, next int, f Freshness, err error) {
	q.await(ctx, projection.Accounts, c)
	owner, found, rows, cp, err := q.reader.Transactions(ctx, vpa, cursor, limit+1)
	return ownedPage(client, owner, found, rows, limit, freshness(cp, c), err,
		func(r VersionedTransaction) (contract.Transaction, int) { return r.Transaction, r.Version })
}

// ownedPage is the answer to a paginated read of an account's list: rows were read with one more than
// limit, so that a row past the page says that another page follows, starting below that page's last key
// (split gives each row's item and key). The list is client's only if the account is.
func ownedPage[R, T any](client, owner string, found bool, rows []R, limit int, f Freshness, err error, split func(R) (T, int)) ([]T, int, Freshness, error) {
	if err != nil {
		return nil, 0, f, err
	}
	if !found || owner != client {
		return nil, 0, f, ErrAccountNotFound
	}
	next := 0
	if len(rows) > limit {
		rows = rows[:limit]
		_, next = split(rows[limit-1])
	}
	items := make([]T, len(rows))
	for i, r := range rows {
		items[i], _ = split(r)
	}
	return items, next, f, nil
}

// Payment returns a payment visible to client. With wait > 0 it long-polls: it answers as soon as the
// payment is terminal, or when wait has passed.
func (q *Queries) Payment(ctx context.Context, client string, id uuid.UUID, wait time.Duration, c Consistency) (contract.Payment, Freshness, error) {
	q.await(ctx, projection.Payments, c)
	var p Payment
	var f Freshness
	settled := func() (<-chan struct{}, func()) { return q.watch.Settled(id.String()) }
	err := longPoll(ctx, wait, settled, func() (bool, error) {
		got, found, cp, err := q.reader.Payment(ctx, id)
		f = freshness(cp, c)
		switch {
		case err != nil:
			return false, err
		case !found || !got.visibleTo(client):
			return false, ErrPaymentNotFound
		}
		p = got
		return p.Terminal(), nil
	})
	if err != nil {
		return contract.Payment{}, f, err
	}
	return p.Payment, f, nil
}

// longPoll reads until read reports its resource terminal, wait has passed or ctx ends, and returns the
// error of a read that failed. It reads at once, and again each time the channel of wake fires: wake is
// subscribed before each read, so that a change committed in between still wakes it, and its stop
// function is called when no longer waiting. ctx ending is no error: the caller answers what it read last.
func longPoll[W any](ctx context.Context, wait time.Duration, wake func() (<-chan W, func()), read func() (terminal bool, err error)) error {
	deadline := time.Now().Add(wait)
	for {
		woken, stop := wake()
		terminal, err := read()
		if err != nil || terminal || wait <= 0 || !time.Now().Before(deadline) {
			stop()
			return err
		}
		timer := time.NewTimer(time.Until(deadline))
		select {
		case <-woken:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		stop()
		if ctx.Err() != nil {
			return nil
		}
	}
}

// Refund is a refund row with the owners who may see it: those of its payment's payer and payee.
type Refund struct {
	contract.Refund
	PayerOwner, PayeeOwner string
}

// refundPoll is how often a long-polling refund read looks again (refunds have no settlement hint).
const refundPoll = 100 * time.Millisecond

// Refund returns a refund visible to client. With wait > 0 it long-polls until the refund is terminal or
// wait has passed, looking again every refundPoll.
func (q *Queries) Refund(ctx context.Context, client string, id uuid.UUID, wait time.Duration, c Consistency) (contract.Refund, Freshness, error) {
	q.await(ctx, projection.Payments, c)
	var rf Refund
	var f Freshness
	tick := func() (<-chan time.Time, func()) {
		t := time.NewTimer(refundPoll)
		return t.C, func() { t.Stop() }
	}
	err := longPoll(ctx, wait, tick, func() (bool, error) {
		got, found, cp, err := q.reader.Refund(ctx, id)
		f = freshness(cp, c)
		switch {
		case err != nil:
			return false, err
		case !found || (client != got.PayerOwner && client != got.PayeeOwner):
			return false, ErrRefundNotFound
		}
		rf = got
		return rf.Status != contract.PaymentPending, nil
	})
	if err != nil {
		return contract.Refund{}, f, err
	}
	return rf.Refund, f, nil
}

// PaymentEvents returns the audit trail of a payment visible to client, oldest first.
func (q *Queries) PaymentEvents(ctx context.Context, client string, id uuid.UUID, c Consistency) ([]contract.PaymentEvent, Freshness, error) {
	q.await(ctx, projection.Payments, c)
	p, found, items, cp, err := q.reader.PaymentEvents(ctx, id)
	f := freshness(cp, c)
	if err != nil {
		return nil, f, err
	}
	if !found || !p.visibleTo(client) {
		return nil, f, ErrPaymentNotFound
	}
	return items, f, nil
}

// VPA looks up a payee: any authenticated client may, and it shows only the registered name and kind.
func (q *Queries) VPA(ctx context.Context, vpa string, c Consistency) (contract.VPALookup, Freshness, error) {
	q.await(ctx, projection.Accounts, c)
	v, found, cp, err := q.reader.VPA(ctx, vpa)
	f := freshness(cp, c)
	if err != nil {
		return contract.VPALookup{}, f, err
	}
	if !found {
		return contract.VPALookup{}, f, ErrVPANotFound
	}
	return v, f, nil
}

// PaymentsByRRN finds the payment with an RRN, for support: it lists it only to the owners of its payer
// and payee, and lists nothing otherwise, so an RRN tells nobody else whether it exists.
func (q *Queries) PaymentsByRRN(ctx context.Context, client, rrn string, c Consistency) ([]contract.Payment, Freshness, error) {
	q.await(ctx, projection.Payments, c)
	p, found, cp, err := q.reader.PaymentByRRN(ctx, rrn)
	f := freshness(cp, c)
	if err != nil {
		return nil, f, err
	}
	if !found || !p.visibleTo(client) {
		return []contract.Payment{}, f, nil
	}
	return []contract.Payment{p.Payment}, f, nil
}

// Collect is a collect request row with the owners who may see it: those of its payee and its payer.
type Collect struct {
	contract.Collect
	PayeeOwner, PayerOwner string
}

// SeqCollect is a collect request with its seq, the keyset of pagination.
type SeqCollect struct {
	contract.Collect
	Seq int
}

// Collect returns a collect request visible to client.
func (q *Queries) Collect(ctx context.Context, client string, id uuid.UUID, c Consistency) (contract.Collect, Freshness, error) {
	q.await(ctx, projection.Payments, c)
	col, found, cp, err := q.reader.Collect(ctx, id)
	f := freshness(cp, c)
	switch {
	case err != nil:
		return contract.Collect{}, f, err
	case !found || (client != col.PayeeOwner && client != col.PayerOwner):
		return contract.Collect{}, f, ErrCollectNotFound
	}
	return col.Collect, f, nil
}

// Collects returns a page of the collect requests addressed to client's account payer, newest first.
// cursor is 0 for the first page, else the seq returned as next by the previous page; next is 0 on the
// last page.
func (q *Queries) Collects(ctx context.Context, client, payer, status string, cursor, limit int, c Consistency) (items []contract.Collect, next int, f Freshness, err error) {
	q.await(ctx, projection.Payments, c)
	owner, found, rows, cp, err := q.reader.Collects(ctx, payer, status, cursor, limit+1)
	return ownedPage(client, owner, found, rows, limit, freshness(cp, c), err,
		func(r SeqCollect) (contract.Collect, int) { return r.Collect, r.Seq })
}

// Withdrawal is a withdrawal row with the owner of its account, who alone may see it.
type Withdrawal struct {
	contract.Withdrawal
	Owner string
}

// Withdrawal returns a withdrawal of an account client owns. A withdrawal is decided when it is accepted,
// so it is terminal as soon as its row exists: with wait > 0 it long-polls for the row (the accounts
// projection applying the withdrawal's event), woken by each move of that projection's checkpoint.
func (q *Queries) Withdrawal(ctx context.Context, client string, id uuid.UUID, wait time.Duration, c Consistency) (contract.Withdrawal, Freshness, error) {
	q.await(ctx, projection.Accounts, c)
	var w Withdrawal
	var f Freshness
	err := longPoll(ctx, wait, q.watch.Moved, func() (bool, error) {
		got, found, cp, err := q.reader.Withdrawal(ctx, id)
		f = freshness(cp, c)
		switch {
		case err != nil:
			return false, err
		case !found:
			return false, nil // not projected yet, or never: wait for it
		case got.Owner != client:
			return true, ErrWithdrawalNotFound
		}
		w = got
		return true, nil
	})
	if err != nil {
		return contract.Withdrawal{}, f, err
	}
	if w.WithdrawalID == "" {
		return contract.Withdrawal{}, f, ErrWithdrawalNotFound
	}
	return w.Withdrawal, f, nil
}

// SettlementAccounts lists the banks' settlement accounts, for operators: one item per bank, sorted by
// bank. It has no owner: the route is an operator's, authenticated before it reaches this service.
func (q *Queries) SettlementAccounts(ctx context.Context, c Consistency) (contract.SettlementAccountList, Freshness, error) {
	q.await(ctx, projection.Accounts, c)
	items, cp, err := q.reader.SettlementAccounts(ctx)
	f := freshness(cp, c)
	if err != nil {
		return contract.SettlementAccountList{}, f, err
	}
	if items == nil {
		items = []contract.SettlementAccount{}
	}
	return contract.SettlementAccountList{Items: items}, f, nil
}
