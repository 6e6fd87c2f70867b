package ledger

import (
	"fmt"
	"slices"
	"time"

	"upi/shared/platform/eventstore"
)

func (r *replay) streamsCheck() Check {
	c := Check{Name: "streams", OK: r.streamProblems.n == 0}
	if c.OK {
		c.Detail = fmt.Sprintf("%s, every one continuous from version 1, every event decoded", plural(len(r.versions), "stream"))
	} else {
		c.Detail = fmt.Sprintf("%s in %s; first: %s", plural(r.streamProblems.n, "problem"), plural(len(r.versions), "stream"), r.streamProblems.first)
	}
	return c
}

func (r *replay) zeroSumCheck() Check {
	parts := fmt.Sprintf("accounts %d, settlement %d, in transit %d", r.accountSum, r.settlementSum, r.transitSum)
	if r.breaks == 0 {
		return Check{Name: "zero-sum", OK: true, Detail: fmt.Sprintf(
			"sum 0 at every one of %d transaction boundaries, up to %s (%s)", r.transactions, r.pos.Token(), parts)}
	}
	return Check{Name: "zero-sum", Detail: fmt.Sprintf(
		"broken at %d of %d transaction boundaries; first: %s; at the end the sum is %d (%s)",
		r.breaks, r.transactions, r.firstBreak, r.sum(), parts)}
}

func (r *replay) balancesCheck() Check {
	c := Check{Name: "balances", OK: r.balanceProblems.n == 0}
	if c.OK {
		c.Detail = fmt.Sprintf("%s and %s: every recorded balance is the fold of its stream, no account below 0",
			plural(len(r.accounts), "account"), plural(len(r.shards), "settlement shard"))
	} else {
		c.Detail = fmt.Sprintf("%s disagreeing with the fold; first: %s", plural(r.balanceProblems.n, "event"), r.balanceProblems.first)
	}
	return c
}

// inFlightCheck counts what is terminal and what is in flight, and fails when the oldest in flight started
// more than stuckAfter before now.
func (r *replay) inFlightCheck(now time.Time, stuckAfter time.Duration) Check {
	var oldest time.Time
	var oldestWhat string
	count := func(what string, flights map[string]*flight) (terminal, open int) {
		for id, f := range flights {
			if f.terminal {
				terminal++
				continue
			}
			open++
			if oldest.IsZero() || f.started.Before(oldest) {
				oldest, oldestWhat = f.started, what+" "+id
			}
		}
		return terminal, open
	}
	pt, po := count("payment", r.payments)
	rt, ro := count("refund", r.refunds)
	completed := 0
	for _, w := range r.withdrawals {
		if w.FailureCode == "" {
			completed++
		}
	}
	detail := fmt.Sprintf("payments %d terminal, %d in flight; refunds %d terminal, %d in flight; withdrawals %d terminal (%d completed, %d failed)",
		pt, po, rt, ro, len(r.withdrawals), completed, len(r.withdrawals)-completed)
	if r.orphanProblem.n > 0 {
		return Check{Name: "in-flight", Detail: fmt.Sprintf("%s; %s for a payment or refund never started; first: %s",
			detail, plural(r.orphanProblem.n, "event"), r.orphanProblem.first)}
	}
	if oldest.IsZero() {
		return Check{Name: "in-flight", OK: true, Detail: detail + "; nothing in flight"}
	}
	age := now.Sub(oldest).Round(time.Millisecond)
	detail += fmt.Sprintf("; oldest in flight: %s, for %s", oldestWhat, age)
	if age > stuckAfter {
		return Check{Name: "in-flight", Detail: detail + fmt.Sprintf(", longer than %s", stuckAfter)}
	}
	return Check{Name: "in-flight", OK: true, Detail: detail}
}

func (r *replay) rrnCheck() Check {
	if r.rrnProblems.n == 0 {
		return Check{Name: "unique-rrn", OK: true, Detail: fmt.Sprintf("%s, each given once", plural(len(r.rrns), "RRN"))}
	}
	return Check{Name: "unique-rrn", Detail: fmt.Sprintf("%s given more than once; first: %s", plural(r.rrnProblems.n, "RRN"), r.rrnProblems.first)}
}

// projectionChecks compare each read model with the replay as of its projection's checkpoint (or, for a
// projection in partitions, each row with the replay as of its partition's checkpoint).
func (r *replay) projectionChecks(m ReadModels) []Check {
	accountsAt := r.captured(m.AccountsAt, m.AccountsParts, m.Owner)
	paymentsAt := r.captured(m.PaymentsAt, m.PaymentsParts, m.Owner)
	accountsToken, paymentsToken := m.AccountsAt.Token(), m.PaymentsAt.Token()
	if len(m.AccountsParts) > 0 {
		accountsToken += " (each row at its partition's checkpoint)"
	}
	if len(m.PaymentsParts) > 0 {
		paymentsToken += " (each row at its partition's checkpoint)"
	}
	return []Check{
		compare("accounts", accountsToken, accountsAt.accounts, m.Accounts, func(a Account) string {
			return fmt.Sprintf("balance %d, version %d", a.Balance, a.Version)
		}),
		compare("settlement_accounts", accountsToken, accountsAt.shards, m.Settlements, func(s Settlement) string {
			return fmt.Sprintf("balance %d, %d deposits, %d withdrawals, version %d", s.Balance, s.Deposits, s.Withdrawals, s.Version)
		}),
		compare("payments", paymentsToken, paymentsAt.payments, m.Payments, func(p Payment) string {
			return fmt.Sprintf("status %s, failure_code %q, rrn %q", p.Status, p.FailureCode, p.RRN)
		}),
		compare("withdrawals", accountsToken, accountsAt.withdrawals, m.Withdrawals, func(w Withdrawal) string {
			return fmt.Sprintf("%s, %d paise, status %s, failure_code %q, rrn %q", w.VPA, w.Amount, w.Status, w.FailureCode, w.RRN)
		}),
	}
}

// captured is the replay as a projection's tables reflect it: as of at, or, with layouts (the checkpoints
// of its partitions, by layout and K), each key as of the furthest of at and of the checkpoints of the
// partitions owning it.
func (r *replay) captured(at eventstore.Position, layouts [][]eventstore.Position, owner func(string, int) int) *capture {
	find := func(p eventstore.Position) *capture {
		for _, c := range r.captures {
			if c.at == p {
				return c
			}
		}
		return nil
	}
	if len(layouts) == 0 || owner == nil {
		return find(at)
	}
	// of is the capture that key's rows reflect.
	of := func(key string) *capture {
		p := at
		for _, layout := range layouts {
			if q := layout[owner(key, len(layout))]; p.Less(q) {
				p = q
			}
		}
		return find(p)
	}
	out := &capture{at: at, accounts: map[string]Account{}, shards: map[string]Settlement{},
		payments: map[string]Payment{}, withdrawals: map[string]Withdrawal{}}
	// Every key of any capture, taken from the capture its rows reflect (absent there: absent).
	for _, c := range r.captures {
		for key := range c.accounts {
			if v, ok := of(key).accounts[key]; ok {
				out.accounts[key] = v
			}
		}
		for key := range c.shards {
			if v, ok := of(key).shards[key]; ok {
				out.shards[key] = v
			}
		}
		for key := range c.payments {
			if v, ok := of(key).payments[key]; ok {
				out.payments[key] = v
			}
		}
		for key, w := range c.withdrawals {
			if v, ok := of(w.VPA).withdrawals[key]; ok {
				out.withdrawals[key] = v
			}
		}
	}
	return out
}

// compare checks that a read model's rows are exactly the replay's, naming the first that differs.
func compare[V comparable](table, at string, replayed, projected map[string]V, show func(V) string) Check {
	var differ []string
	for k, v := range replayed {
		if p, ok := projected[k]; !ok || p != v {
			differ = append(differ, k)
		}
	}
	for k := range projected {
		if _, ok := replayed[k]; !ok {
			differ = append(differ, k)
		}
	}
	name := "projection " + table
	if len(differ) == 0 {
		return Check{Name: name, OK: true, Detail: fmt.Sprintf("%s, all equal to the replay at the checkpoint %s", plural(len(projected), "row"), at)}
	}
	slices.Sort(differ)
	k := differ[0]
	side := func(m map[string]V) string {
		if v, ok := m[k]; ok {
			return show(v)
		}
		return "absent"
	}
	return Check{Name: name, Detail: fmt.Sprintf("%d of %s differ from the replay at the checkpoint %s; first: %s is %s in the table, %s in the log",
		len(differ), plural(len(projected), "row"), at, k, side(projected), side(replayed))}
}

// plural is n and noun, plural unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
