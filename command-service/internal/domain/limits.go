package domain

import (
	"fmt"
	"time"

	"upi/shared/contract/events"
	"upi/shared/contract/money"
)

// Limits are the payer limits a debit is checked against, over the 24 hours before it. A zero turns that
// limit off.
type Limits struct {
	// DailyPaise bounds what an account is debited in 24 hours (DAILY_LIMIT_EXCEEDED).
	DailyPaise money.Paise
	// DailyP2PCount bounds how many payments to PERSON payees an account makes in 24 hours
	// (COUNT_LIMIT_EXCEEDED); payments to entities do not count.
	DailyP2PCount int
	// NewAccountPaise bounds what an account is debited in its first 24 hours (NEW_ACCOUNT_LIMIT_EXCEEDED).
	NewAccountPaise money.Paise
}

// Day is the span of every limit: the rolling 24 hours before a debit.
const Day = 24 * time.Hour

// breach is the failure code of the first limit the payment's debit at `at` would pass, or "".
func (l Limits) breach(a Account, p Payment, at time.Time) string {
	spent, count := a.Window.Totals(at)
	if l.NewAccountPaise > 0 && at.Sub(a.CreatedAt) < Day && spent+p.Amount > l.NewAccountPaise {
		return events.CodeNewAccountLimitExceeded
	}
	if l.DailyPaise > 0 && spent+p.Amount > l.DailyPaise {
		return events.CodeDailyLimitExceeded
	}
	if l.DailyP2PCount > 0 && p2p(p.PayeeType) == 1 && count+1 > l.DailyP2PCount {
		return events.CodeCountLimitExceeded
	}
	return ""
}

// p2p is 1 for a payment to a person (a payee type of "" was written before kinds existed: a person), else 0.
func p2p(payeeType string) int {
	if payeeType == events.AccountEntity {
		return 0
	}
	return 1
}

// Window is an account's debits of the last 24 hours, net of reversals, in buckets of one minute, oldest
// first: at most 1441 small entries however busy the account, so its snapshot stays small. A debit counts
// until the end of its minute's bucket leaves the window: between 24 hours and 24 hours and a minute, on
// the side of the limit.
type Window []Spend

// Spend is what an account was debited in one minute.
type Spend struct {
	Minute time.Time   `json:"m"` // start of the minute, UTC
	Paise  money.Paise `json:"p"` // debited, net of reversals
	P2P    int         `json:"n"` // payments to persons, net of reversals
}

// bucket is the span of one Spend.
const bucket = time.Minute

// live is the index of the first bucket still in the window at `now`.
func (w Window) live(now time.Time) int {
	cut := now.Add(-Day - bucket)
	i := 0
	for i < len(w) && !w[i].Minute.After(cut) {
		i++
	}
	return i
}

// Totals sums the window as it stands at `now`: what was debited and how many payments to persons.
func (w Window) Totals(now time.Time) (money.Paise, int) {
	var paise money.Paise
	var n int
	for _, s := range w[w.live(now):] {
		paise += s.Paise
		n += s.P2P
	}
	return paise, n
}

// add returns the window at `now` with paise and n added to the bucket of `at` (negative for a reversal).
// It never writes to w: the result is a new slice, or a subslice of w when nothing is added. A reversal
// whose debit has already left the window changes nothing.
func (w Window) add(now, at time.Time, paise money.Paise, n int) Window {
	w = w[w.live(now):]
	minute := at.UTC().Truncate(bucket)
	i := len(w)
	for i > 0 && w[i-1].Minute.After(minute) {
		i--
	}
	if i > 0 && w[i-1].Minute.Equal(minute) {
		out := make(Window, len(w))
		copy(out, w)
		out[i-1].Paise += paise
		out[i-1].P2P += n
		return out
	}
	if paise < 0 || !minute.After(now.Add(-Day-bucket)) {
		return w // the debit it would net out is no longer in the window
	}
	out := make(Window, 0, len(w)+1)
	out = append(append(append(out, w[:i]...), Spend{Minute: minute, Paise: paise, P2P: n}), w[i:]...)
	return out
}

// RRN is the retrieval reference number of a debit at `at` whose sequence tail is tail, in the UPI form
// YDDDHHNNNNNN: the last digit of the year, the day of the year and the hour (in India's time, as UPI
// reads them), then the tail's last six digits.
func RRN(at time.Time, tail int64) string {
	return fmt.Sprintf("%s%06d", RRNHour(at), tail%1_000_000)
}

// RRNHour is the first six digits of an RRN given at `at`: the last digit of the year, the day of the year
// and the hour, in IST.
func RRNHour(at time.Time) string {
	t := at.In(ist)
	return fmt.Sprintf("%d%03d%02d", t.Year()%10, t.YearDay(), t.Hour())
}

// RRNHourEnd is when the hour of `at` (in IST) ends, and RRNs stop naming it.
func RRNHourEnd(at time.Time) time.Time {
	t := at.In(ist)
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, ist).Add(time.Hour)
}

// ist is India Standard Time, a fixed offset (no tz database needed).
var ist = time.FixedZone("IST", 5*3600+30*60)
