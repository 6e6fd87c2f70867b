package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/command-service/internal/domain"
	"upi/shared/platform/eventstore"
)

// ErrRRNSpaceExhausted: every hour an RRN may name, from the debit's own to RRNOptions.BorrowHours after
// it, has given all its tails. The debit is refused, not given a repeat; the workflow retries it later.
var ErrRRNSpaceExhausted = errors.New("no RRN left to give: the hours' tail spaces are used up")

// RRNOptions size the RRN allocator. The zero value is the production setting.
type RRNOptions struct {
	// Block is how many tails one reservation takes (default 1000): one short transaction per Block
	// debits.
	Block int
	// Tails is the size of an hour's tail space (default 1,000,000: the six digits of the UPI form).
	// Tests shrink it to show what happens when it runs out.
	Tails int
	// BorrowHours is how many hours ahead a debit may take its tail from when its own hour has given them
	// all (default 24); past that it is refused with ErrRRNSpaceExhausted. 0 keeps the default; a
	// negative value borrows nothing.
	BorrowHours int
}

func (o RRNOptions) withDefaults() RRNOptions {
	if o.Block <= 0 {
		o.Block = 1000
	}
	if o.Tails <= 0 {
		o.Tails = 1_000_000
	}
	if o.BorrowHours == 0 {
		o.BorrowHours = 24
	} else if o.BorrowHours < 0 {
		o.BorrowHours = 0
	}
	if o.Block > o.Tails {
		o.Block = o.Tails
	}
	return o
}

// RRNs hands out retrieval reference numbers (YDDDHH in IST, then a 6-digit tail) that are never given
// twice. Each hour's tails are reserved from the rrn_blocks table a block at a time, in a transaction of
// their own taken before the group that uses them (so no debit's locks wait on it); a group leases exactly
// the tails its debits may need, and gives back those a replay or a rejection did not use, so that only a
// debit that moves money consumes one. Tails are lost (gaps, never repeats) when a process stops with a
// block in hand or an hour ends before its block is used up. The events' unique index on RRNs is the
// backstop: a repeat would fail its transaction, never be stored.
type RRNs struct {
	pool *pgxpool.Pool
	opt  RRNOptions
	now  func() time.Time

	mu sync.Mutex
	// free are the tails reserved and not leased, all of one hour (prefix), which ends at until.
	prefix string
	until  time.Time
	free   []int
}

// NewRRNs returns the allocator reserving from pool's database.
func NewRRNs(pool *pgxpool.Pool, opt RRNOptions) *RRNs {
	return &RRNs{pool: pool, opt: opt.withDefaults(), now: time.Now}
}

// rrn is one RRN leased to a group: its hour prefix and tail.
type rrn struct {
	prefix string
	tail   int
}

func (r rrn) String() string { return fmt.Sprintf("%s%06d", r.prefix, r.tail) }

// RRNLease is the RRNs one group may give, taken by its debits in order; Release gives back the rest.
type RRNLease struct {
	from *RRNs
	rrns []rrn
	used int
}

// Lease reserves n RRNs for a group about to run. n = 0 gives an empty lease and does nothing.
func (a *RRNs) Lease(ctx context.Context, n int) (*RRNLease, error) {
	l := &RRNLease{from: a}
	if n == 0 {
		return l, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if a.prefix != "" && !now.Before(a.until) {
		a.prefix, a.free = "", nil // an hour that has passed: its leftover tails are gaps
	}
	for len(l.rrns) < n {
		if len(a.free) == 0 {
			if err := a.reserve(ctx, now); err != nil {
				l.Release()
				return nil, err
			}
		}
		k := min(n-len(l.rrns), len(a.free))
		for _, t := range a.free[:k] {
			l.rrns = append(l.rrns, rrn{prefix: a.prefix, tail: t})
		}
		a.free = a.free[k:]
	}
	return l, nil
}

// Take gives the next leased RRN, or an error when the lease holds no more (a group that leased too few:
// a bug, reported rather than answered with a repeat).
func (l *RRNLease) Take() (string, error) {
	if l == nil || l.used >= len(l.rrns) {
		return "", errors.New("rrn: the group's lease is used up")
	}
	r := l.rrns[l.used]
	l.used++
	return r.String(), nil
}

// Release gives back the RRNs the group did not take, to be leased again while their hour lasts.
func (l *RRNLease) Release() {
	if l == nil || l.used >= len(l.rrns) {
		return
	}
	a := l.from
	rest := l.rrns[l.used:]
	l.used = len(l.rrns)
	if len(rest) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	back := make([]int, 0, len(rest)+len(a.free))
	for _, r := range rest {
		if r.prefix == a.prefix {
			back = append(back, r.tail)
		}
	}
	a.free = append(back, a.free...) // given first again: the hour's RRNs stay close to consecutive
}

// reserve takes a block of tails into free: from the space of now's hour, or of the first hour after it
// (up to BorrowHours) that has tails left. Called with mu held.
func (a *RRNs) reserve(ctx context.Context, now time.Time) error {
	for h := 0; h <= a.opt.BorrowHours; h++ {
		at := now.Add(time.Duration(h) * time.Hour)
		prefix := domain.RRNHour(at)
		first, end, err := a.reserveIn(ctx, prefix)
		if err != nil {
			return err
		}
		if end > first {
			a.prefix, a.until = prefix, domain.RRNHourEnd(at)
			a.free = make([]int, 0, end-first)
			for tail := first; tail < end; tail++ {
				a.free = append(a.free, tail)
			}
			return nil
		}
	}
	return fmt.Errorf("%w (the hour of %s and the %d after it)", ErrRRNSpaceExhausted, now.Format(time.RFC3339), a.opt.BorrowHours)
}

// reserveIn reserves a block of prefix's tails, [first, end), in a transaction of its own and one round
// trip: the row's lock orders concurrent reservations of one hour, by any replica, and its first insert
// makes sure there is a row to lock.
func (a *RRNs) reserveIn(ctx context.Context, prefix string) (first, end int, err error) {
	err = pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`insert into rrn_blocks (prefix, next_tail) values ($1, 0) on conflict (prefix) do nothing`, prefix)
		b.Queue(`select next_tail from rrn_blocks where prefix = $1 for update`, prefix)
		b.Queue(`update rrn_blocks set next_tail = least(next_tail + $2::int, $3::int) where prefix = $1
			returning next_tail`, prefix, a.opt.Block, a.opt.Tails)
		br := tx.SendBatch(ctx, b)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return err
		}
		if err := br.QueryRow().Scan(&first); err != nil {
			return err
		}
		if err := br.QueryRow().Scan(&end); err != nil {
			return err
		}
		return br.Close()
	})
	if err != nil {
		return 0, 0, eventstore.MarkUnavailable(fmt.Errorf("reserve rrn tails of hour %s: %w", prefix, err))
	}
	if end < first {
		end = first
	}
	return first, end, nil
}
