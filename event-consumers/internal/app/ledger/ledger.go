// Package ledger checks the books from the event log alone: it replays the whole log from the start, in
// log order ((tx_id, global_position), below the horizon, as every consumer reads it), and checks what
// must hold of money and of the read models built from it (docs/failure-handling.md, "Checking the
// ledger"):
//
//   - streams: every stream continues version by version, and every event decodes;
//   - zero-sum: at every transaction boundary, the accounts' balances, the settlement shards' balances and
//     the money in transit (payments and refunds debited and not yet credited or reversed) add up to zero;
//   - balances: every balance an event records is the fold of its stream, and no account is negative;
//   - in-flight: every payment, refund and withdrawal is terminal or in flight for less than StuckAfter;
//   - projection NAME: each read model (accounts, settlement_accounts, payments, withdrawals) equals the
//     replay at the projection's checkpoint;
//   - unique-rrn: no RRN is given twice across payments' debits, refunds' debits and withdrawals.
//
// `event-consumers verify` prints the checks, GET /admin/ledger-check answers them.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"upi/shared/platform/eventstore"
)

// DefaultStuckAfter is how long a payment or refund may stay in flight before the check fails.
const DefaultStuckAfter = 15 * time.Minute

// Options tune a check; the zero value of a field takes its default.
type Options struct {
	// StuckAfter: something in flight for longer fails the in-flight check (default DefaultStuckAfter).
	StuckAfter time.Duration
	// BatchSize is how many events are read at a time (default 5000).
	BatchSize int
}

// Check is the outcome of one check: its name, whether it holds, and what it found.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Report is a whole run: OK when every check holds, and the position (token) of the last event checked.
type Report struct {
	OK       bool    `json:"ok"`
	Checks   []Check `json:"checks"`
	Position string  `json:"position"`
}

// Snapshot is one consistent view of the database: the log below its horizon, the read models and their
// checkpoints, and the database's clock, all as of one moment.
type Snapshot interface {
	// ReadLog returns up to limit events after `after`, in log order, below the snapshot's horizon.
	ReadLog(ctx context.Context, after eventstore.Position, limit int) ([]eventstore.Event, error)
	// ReadModels reads the read models the check compares with the replay.
	ReadModels(ctx context.Context) (ReadModels, error)
	// Now is the snapshot's time.
	Now() time.Time
}

// Store opens snapshots. An error from it means the database could not be read: the check did not run.
type Store interface {
	View(ctx context.Context, fn func(ctx context.Context, s Snapshot) error) error
}

// ReadModels are the read models as the projections built them, with the checkpoint each reflects.
type ReadModels struct {
	// AccountsAt is the "accounts" projection's checkpoint (accounts, settlement_accounts, withdrawals);
	// PaymentsAt the "payments" projection's.
	AccountsAt, PaymentsAt eventstore.Position
	// AccountsParts and PaymentsParts are the checkpoints of the projections' partitions when they run in
	// partitions ahead of AccountsAt or PaymentsAt: one slice per layout (CONSUMER_PARTITIONS; two while
	// it changes), each by K (the start of the log for a row that is gone). A table's row then reflects
	// the furthest of the projection's checkpoint and of the rows of the partitions that own its key
	// (Owner: which of n partitions owns a key; the payment's id for a payment, the account's VPA for an
	// account and its withdrawals, the stream for a settlement shard). Empty: the tables reflect
	// AccountsAt and PaymentsAt.
	AccountsParts, PaymentsParts [][]eventstore.Position
	Owner                        func(key string, n int) int
	Accounts                     map[string]Account    // by VPA
	Settlements                  map[string]Settlement // by settlement stream (events.SettlementStream)
	Payments                     map[string]Payment    // by payment id
	Withdrawals                  map[string]Withdrawal // by withdrawal id
}

// Account is what the check compares of an account.
type Account struct {
	Balance int64
	Version int
}

// Settlement is what the check compares of a settlement shard.
type Settlement struct {
	Balance, Deposits, Withdrawals int64
	Version                        int
}

// Payment is what the check compares of a payment.
type Payment struct {
	Status, FailureCode, RRN string
}

// Withdrawal is what the check compares of a withdrawal.
type Withdrawal struct {
	VPA                      string
	Amount                   int64
	Status, FailureCode, RRN string
}

// Checker runs the check on a store.
type Checker struct {
	store Store
	opts  Options
}

// New returns a checker of store's books.
func New(store Store, opts Options) *Checker {
	if opts.StuckAfter <= 0 {
		opts.StuckAfter = DefaultStuckAfter
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 5000
	}
	return &Checker{store: store, opts: opts}
}

// WithStuckAfter is the same checker with another in-flight threshold.
func (c *Checker) WithStuckAfter(d time.Duration) *Checker {
	opts := c.opts
	opts.StuckAfter = d
	return New(c.store, opts)
}

// ErrUnavailable wraps every error of Run: the database could not be read, and nothing was checked.
var ErrUnavailable = errors.New("ledger check: database unavailable")

// Run replays the log and runs every check. An error means the check could not run (ErrUnavailable);
// a check that fails is a Report with OK false.
func (c *Checker) Run(ctx context.Context) (Report, error) {
	r := newReplay()
	var models ReadModels
	var now time.Time
	err := c.store.View(ctx, func(ctx context.Context, s Snapshot) error {
		var err error
		if models, err = s.ReadModels(ctx); err != nil {
			return fmt.Errorf("read the read models: %w", err)
		}
		now = s.Now()
		r.captureAt(models.AccountsAt, models.PaymentsAt)
		for _, layout := range append(models.AccountsParts, models.PaymentsParts...) {
			r.captureAt(layout...)
		}
		for {
			batch, err := s.ReadLog(ctx, r.pos, c.opts.BatchSize)
			if err != nil {
				return fmt.Errorf("read the log after %s: %w", r.pos.Token(), err)
			}
			for _, e := range batch {
				r.apply(e)
			}
			if len(batch) < c.opts.BatchSize {
				return nil
			}
		}
	})
	if err != nil {
		return Report{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	r.end()
	checks := []Check{
		r.streamsCheck(),
		r.zeroSumCheck(),
		r.balancesCheck(),
		r.inFlightCheck(now, c.opts.StuckAfter),
	}
	checks = append(checks, r.projectionChecks(models)...)
	checks = append(checks, r.rrnCheck())
	rep := Report{OK: true, Checks: checks, Position: r.pos.Token()}
	for _, ch := range checks {
		rep.OK = rep.OK && ch.OK
	}
	return rep, nil
}

// Lines are the report as `verify` prints it: one line per check, "ok   NAME: DETAIL" or
// "FAIL NAME: DETAIL".
func (r Report) Lines() []string {
	out := make([]string, len(r.Checks))
	for i, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		out[i] = fmt.Sprintf("%s %s: %s", mark, c.Name, c.Detail)
	}
	return out
}
